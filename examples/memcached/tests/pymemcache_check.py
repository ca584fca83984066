# pymemcache against the server on 127.0.0.1:PORT (argv[1]): get, set, gets/cas,
# incr/decr, get_many, add/replace/append/prepend/delete/touch, a too-large
# value, stats. Run by tests/clients.rs.
import sys
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheServerError
c=Client(("127.0.0.1",int(sys.argv[1])), default_noreply=False)
c.flush_all()
assert c.set("a","1")
assert c.get("a")==b"1"
v,cas=c.gets("a")
assert c.cas("a","2",cas) is True
assert c.cas("a","3",cas) is False
assert c.incr("a",5)==7
assert c.decr("a",10)==0
c.set_many({"x":"1","y":"2","z":"3"})
assert c.get_many(["x","y","z","nope"])=={"x":b"1","y":b"2","z":b"3"}
assert c.add("x","9") is False
assert c.replace("nope","9") is False
assert c.append("x","A") and c.prepend("x","B") and c.get("x")==b"B1A"
assert c.delete("x") and c.get("x") is None
assert c.touch("y", 100)
try:
    c.set("big","v"*((1<<20)+1)); raise SystemExit("a too-large set was accepted")
except MemcacheServerError as e:
    assert b"object too large" in str(e).encode() or "object too large" in str(e), e
assert c.get("y")==b"2"
s=c.stats()
assert int(s[b'curr_items'])>=2, s
print("pymemcache: ok", {k.decode():s[k] for k in [b'curr_items',b'total_items',b'cmd_get',b'get_hits',b'get_misses',b'curr_connections',b'limit_maxbytes',b'threads',b'version']})
