//! The job writers' output, checked as the engines would check it: the
//! KubeVirt VM against KubeVirt's published OpenAPI schema (vendored in
//! `tests/data`, with unknown fields refused everywhere) plus its admission
//! webhook's rules; the Nomad job through structs that refuse unknown
//! fields plus the qemu driver's runtime rules. Each check is shown to
//! reject a broken job.

use std::net::SocketAddr;
use std::path::PathBuf;

use ebbrt_node_allocator::job::{KubeVirtJob, NomadJob, kubevirt, nomad};
use ebbrt_node_allocator::{AllocError, Bootstrap, NodeAllocator, NodeId, NodeOpts};
use serde_json::{Value, json};

fn out_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("jobs-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn frontend() -> SocketAddr {
    "10.96.0.20:7000".parse().unwrap()
}

/// KubeVirt's definitions as a draft-4 schema rooted at the VM, with
/// `additionalProperties: false` on every object that does not say what
/// its extra properties may be.
fn vm_validator() -> jsonschema::Validator {
    let text = include_str!("data/kubevirt-virtualmachine.swagger.json");
    let mut defs: Value = serde_json::from_str(text).unwrap();
    fn close(v: &mut Value) {
        match v {
            Value::Object(m) => {
                let is_object = m.get("type") == Some(&json!("object"));
                if is_object && !m.contains_key("additionalProperties") {
                    m.insert("additionalProperties".into(), json!(false));
                }
                for (_, x) in m.iter_mut() {
                    close(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut defs);
    let schema = json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "$ref": "#/definitions/v1.VirtualMachine",
        "definitions": defs["definitions"],
    });
    jsonschema::draft4::new(&schema).expect("the vendored schema compiles")
}

fn schema_errors(v: &jsonschema::Validator, vm: &Value) -> Vec<String> {
    v.iter_errors(vm)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn kubevirt_job(dir: PathBuf) -> KubeVirtJob {
    KubeVirtJob {
        out_dir: dir,
        app: "memcached".into(),
        namespace: Some("ebbrt".into()),
        container_image: "registry.example/memcached-kernel:1".into(),
        kernel_path: "/boot/memcached.elf".into(),
        frontend: frontend(),
    }
}

fn opts() -> NodeOpts {
    NodeOpts {
        cores: 4,
        memory_mib: 512,
        node_port: Some(11211),
        extra_args: "ebbrt.log=info".into(),
    }
}

/// A file that stands in for the image (job backends do not read it).
fn image(dir: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("node.elf");
    std::fs::write(&p, b"\x7fELF").unwrap();
    p
}

#[test]
fn kubevirt_vm_validates_against_the_schema_and_the_webhook_rules() {
    let dir = out_dir("kubevirt");
    let img = image(&dir.join("img"));
    let alloc = NodeAllocator::new(kubevirt_job(dir.clone()));
    let a = alloc.allocate(&img, &opts()).unwrap();
    let b = alloc.allocate(&img, &opts()).unwrap();
    assert_eq!((a.id(), b.id()), (NodeId(1), NodeId(2)));
    assert!(a.command_line().is_empty() && a.console_log().is_none());

    let path = a.artifact().unwrap();
    assert_eq!(path, dir.join("memcached-node-1.json"));
    let vm: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = vm_validator();
    assert_eq!(schema_errors(&validator, &vm), Vec::<String>::new());
    assert_eq!(kubevirt::admission_causes(&vm), Vec::<String>::new());

    // What the node is told arrives in kernelArgs, and the frontend is the
    // user's endpoint.
    let domain = &vm["spec"]["template"]["spec"]["domain"];
    let args = domain["firmware"]["kernelBoot"]["kernelArgs"]
        .as_str()
        .unwrap();
    let boot = Bootstrap::parse(args).unwrap();
    assert_eq!(&boot, a.bootstrap());
    assert_eq!(boot.frontend, frontend());
    assert!(args.ends_with(" ebbrt.log=info"), "{args}");
    assert_eq!(domain["devices"]["networkInterfaceMultiqueue"], json!(true));
    assert_eq!(domain["devices"]["interfaces"][0]["model"], "virtio");
    assert_eq!(domain["devices"]["interfaces"][0]["masquerade"], json!({}));
    assert_eq!(domain["machine"]["type"], "q35");
    assert_eq!(domain["cpu"]["cores"], 4);
    assert_eq!(domain["memory"]["guest"], "512Mi");
    // Two nodes of one allocation: two ids and id spaces, one secret.
    assert_ne!(a.bootstrap().node, b.bootstrap().node);
    assert_ne!(a.bootstrap().id_space, b.bootstrap().id_space);
    assert_eq!(a.bootstrap().secret, b.bootstrap().secret);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_broken_vm_is_rejected() {
    let job = kubevirt_job(out_dir("kubevirt-broken"));
    let boot = Bootstrap {
        node: NodeId(1),
        id_space: ebbrt_node_allocator::IdSpace(1),
        frontend: frontend(),
        epoch: 1,
        secret: ebbrt_node_allocator::Secret::from_bytes([7; 32]),
    };
    let good = job.virtual_machine(&boot, &opts());
    let validator = vm_validator();
    assert!(schema_errors(&validator, &good).is_empty());
    let kb = "/spec/template/spec/domain/firmware/kernelBoot";

    // A typo'd field: the schema refuses it.
    let mut typo = good.clone();
    let f = typo
        .pointer_mut("/spec/template/spec/domain/firmware")
        .unwrap();
    let v = f.as_object_mut().unwrap().remove("kernelBoot").unwrap();
    f["kernalBoot"] = v;
    let e = schema_errors(&validator, &typo);
    assert!(e.iter().any(|e| e.contains("kernalBoot")), "{e:?}");

    // A missing image: the schema's `required` refuses it, and so does the
    // webhook rule.
    let mut no_image = good.clone();
    no_image
        .pointer_mut(&format!("{kb}/container"))
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("image");
    assert!(!schema_errors(&validator, &no_image).is_empty());
    let c = kubevirt::admission_causes(&no_image);
    assert!(c.iter().any(|c| c.contains("with an image")), "{c:?}");

    // Rules only the webhook has.
    let mut no_container = good.clone();
    no_container
        .pointer_mut(kb)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("container");
    assert!(schema_errors(&validator, &no_container).is_empty());
    let c = kubevirt::admission_causes(&no_container);
    assert!(
        c.iter().any(|c| c.contains("without an external kernel")),
        "{c:?}"
    );

    let mut no_path = good.clone();
    no_path
        .pointer_mut(&format!("{kb}/container"))
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("kernelPath");
    assert!(schema_errors(&validator, &no_path).is_empty());
    let c = kubevirt::admission_causes(&no_path);
    assert!(
        c.iter().any(|c| c.contains("kernelPath, initrdPath")),
        "{c:?}"
    );

    let mut relative = good.clone();
    *relative
        .pointer_mut(&format!("{kb}/container/kernelPath"))
        .unwrap() = json!("boot/../x.elf");
    assert!(schema_errors(&validator, &relative).is_empty());
    let c = kubevirt::admission_causes(&relative);
    assert!(c.iter().any(|c| c.contains("absolute path")), "{c:?}");

    let mut net = good.clone();
    *net.pointer_mut("/spec/template/spec/networks/0/name")
        .unwrap() = json!("other");
    let c = kubevirt::admission_causes(&net);
    assert!(
        c.iter().any(|c| c.contains("not found in networks")),
        "{c:?}"
    );

    // The writer refuses to write what the webhook would refuse.
    let mut bad_job = job.clone();
    bad_job.kernel_path = "boot/x.elf".into();
    let dir = out_dir("kubevirt-refused");
    let img = image(&dir);
    let alloc = NodeAllocator::new(bad_job);
    match alloc.allocate(&img, &opts()) {
        Err(AllocError::Options(m)) => assert!(m.contains("absolute path"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn nomad_job(dir: PathBuf) -> NomadJob {
    NomadJob {
        out_dir: dir,
        app: "memcached".into(),
        datacenters: vec!["dc1".into()],
        image_url: "https://artifacts.example/memcached.elf".into(),
        image_file: "memcached.elf".into(),
        accelerator: "tcg".into(),
        frontend: "192.0.2.10:7000".parse().unwrap(),
    }
}

#[test]
fn nomad_job_reads_back_strictly_and_passes_the_driver_rules() {
    let dir = out_dir("nomad");
    let img = image(&dir.join("img"));
    let alloc = NodeAllocator::new(nomad_job(dir.clone()));
    let h = alloc.allocate(&img, &opts()).unwrap();
    let text = std::fs::read_to_string(h.artifact().unwrap()).unwrap();
    let job: nomad::JobFile = serde_json::from_str(&text).unwrap();
    assert_eq!(nomad::check(&job), Vec::<String>::new());
    let task = &job.job.task_groups[0].tasks[0];
    assert_eq!(task.driver, "qemu");
    let args = &task.config.args;
    let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
    assert_eq!(&Bootstrap::parse(append).unwrap(), h.bootstrap());
    assert!(args.windows(2).any(|w| w == ["-smp", "4"]));

    // Unknown fields are refused, at the top and inside the driver config.
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["Job"]["TaskGroups"][0]["Tasks"][0]["Config"]["drive_interfce"] = json!("none");
    let e = serde_json::from_value::<nomad::JobFile>(v).unwrap_err();
    assert!(e.to_string().contains("drive_interfce"), "{e}");
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["Job"]["Datacenter"] = json!(["dc1"]);
    assert!(serde_json::from_value::<nomad::JobFile>(v).is_err());

    // The driver's runtime rules.
    let mut bad = job.clone();
    let t = &mut bad.job.task_groups[0].tasks[0];
    t.config.drive_interface = Some("nvme".into());
    t.config.image_path = "../x.elf".into();
    t.resources.memory_mb = 64;
    t.config.port_map[0].insert("admin".into(), 8080);
    let c = nomad::check(&bad).join("\n");
    for want in [
        "drive_interface `nvme`",
        "inside the task directory",
        "MemoryMB 64",
        "`admin`",
        "-kernel",
    ] {
        assert!(c.contains(want), "missing `{want}` in:\n{c}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
