//! Symbolized native backtraces.
//!
//! A native panic or exception prints a backtrace of return addresses
//! (`ebbrt-core/src/native/backtrace.rs`): the header line
//! [`HEADER_MARK`], then one `    #i 0x...` line per frame, with runs of one
//! address folded into `    ... the same address N more times`. While the
//! tool relays the console, [`Symbolizer::annotate`] recognises those lines
//! and returns, for each frame, the function (demangled), file and line
//! from the booted image's DWARF, inlined frames included; the raw line is
//! left as it was, and the symbolized lines follow it.
//!
//! A return address points after its call, so `addr - 1` is looked up (it
//! lies inside the call instruction). A fault's `#0` is the faulting
//! instruction itself (the `rip` of the register dump above it), looked up
//! as it is. Nothing is added when the image cannot be read, has no debug
//! information, or does not contain the address.

use std::borrow::Cow;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The start of the backtrace header the native kernel prints
/// (`backtrace::HEADER`).
pub const HEADER_MARK: &str = "backtrace (return addresses";

/// Indentation of the symbolized lines (under the address of `    #i 0x`).
const INDENT: &str = "        ";

/// Annotates a native kernel's backtraces from its ELF image.
pub struct Symbolizer {
    image: PathBuf,
    /// A prefix dropped from file names (the workspace root).
    strip: Option<PathBuf>,
    /// Loaded at the first frame line: `None` until then, `Some(None)`
    /// when the image could not be loaded (tried once).
    loader: Option<Option<addr2line::Loader>>,
    /// Inside a backtrace (after its header).
    in_backtrace: bool,
    /// The `rip` of the last register dump (a fault's `#0` is this address).
    fault_rip: Option<u64>,
}

impl Symbolizer {
    /// A symbolizer for the kernel image at `image`; file names under
    /// `strip` are shown relative to it.
    pub fn new(image: impl Into<PathBuf>, strip: Option<&Path>) -> Self {
        Symbolizer {
            image: image.into(),
            strip: strip.map(Path::to_path_buf),
            loader: None,
            in_backtrace: false,
            fault_rip: None,
        }
    }

    /// The lines to print after the console line `line` (without its line
    /// end): the frames of its address when it is a frame of a backtrace,
    /// nothing otherwise.
    pub fn annotate(&mut self, line: &str) -> Vec<String> {
        if line.contains(HEADER_MARK) {
            self.in_backtrace = true;
            return Vec::new();
        }
        if !self.in_backtrace {
            if let Some(rip) = register_rip(line) {
                self.fault_rip = Some(rip);
            }
            return Vec::new();
        }
        let trimmed = line.trim();
        if trimmed.starts_with("... the same address") {
            return Vec::new();
        }
        let Some(addr) = frame_address(trimmed) else {
            self.in_backtrace = false;
            self.fault_rip = register_rip(line);
            return Vec::new();
        };
        // The faulting instruction itself, or a return address (after the call).
        let exact = self.fault_rip == Some(addr);
        if exact {
            self.fault_rip = None;
        }
        let probe = if exact {
            Some(addr)
        } else {
            addr.checked_sub(1)
        };
        // The lookup takes [probe, probe + 1): u64::MAX has no such range.
        let Some(probe) = probe.filter(|p| *p < u64::MAX) else {
            return Vec::new();
        };
        let image = &self.image;
        let loader = self
            .loader
            .get_or_insert_with(|| addr2line::Loader::new(image).ok());
        let Some(loader) = loader else {
            return Vec::new();
        };
        // Malformed debug information must not take the console relay
        // down with it: a lookup that panics ends symbolization for the run.
        let found = panic::catch_unwind(AssertUnwindSafe(|| frames(loader, probe)));
        let Ok(found) = found else {
            self.loader = Some(None);
            return Vec::new();
        };
        found
            .into_iter()
            .map(|f| f.render(self.strip.as_deref()))
            .collect()
    }
}

/// The value after `rip ` in a register dump line (`  rip 0x... rsp ...`).
fn register_rip(line: &str) -> Option<u64> {
    let rest = line.trim_start().strip_prefix("rip ")?;
    parse_hex(rest.split_whitespace().next()?)
}

/// The address of a frame line, `#<i> 0x<hex>` (trimmed).
fn frame_address(line: &str) -> Option<u64> {
    let rest = line.strip_prefix('#')?;
    let (index, addr) = rest.split_once(' ')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    parse_hex(addr.trim())
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// One function at an address: the innermost inlined one first.
#[derive(Debug, PartialEq)]
struct Frame {
    function: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
    /// Inlined into the frame after it.
    inlined: bool,
}

impl Frame {
    fn render(&self, strip: Option<&Path>) -> String {
        let mut out = String::from(INDENT);
        out += self.function.as_deref().unwrap_or("??");
        if self.inlined {
            out += " (inlined)";
        }
        if let Some(file) = &self.file {
            let shown = strip
                .and_then(|root| Path::new(file).strip_prefix(root).ok())
                .map_or(Cow::Borrowed(file.as_str()), |p| p.to_string_lossy());
            out += " at ";
            out += &shown;
            if let Some(line) = self.line {
                out += &format!(":{line}");
                if let Some(col) = self.column.filter(|c| *c > 0) {
                    out += &format!(":{col}");
                }
            }
        }
        out
    }
}

/// The functions at `probe`, innermost first; empty when the image says
/// nothing about it.
fn frames(loader: &addr2line::Loader, probe: u64) -> Vec<Frame> {
    let mut out = Vec::new();
    if let Ok(mut iter) = loader.find_frames(probe) {
        while let Ok(Some(f)) = iter.next() {
            let function = f
                .function
                .as_ref()
                .and_then(|n| n.raw_name().ok())
                .map(|n| demangle(&n));
            let (file, line, column) = f
                .location
                .map(|l| (l.file.map(String::from), l.line, l.column))
                .unwrap_or_default();
            out.push(Frame {
                function,
                file,
                line,
                column,
                inlined: true,
            });
        }
    }
    if let Some(last) = out.last_mut() {
        last.inlined = false;
    }
    // Without DWARF function records, the symbol table names the function,
    // when the address is in the image's code at all.
    let in_text = loader
        .get_section_range(b".text")
        .is_some_and(|r| (r.begin..r.end).contains(&probe));
    let unnamed = out.last().is_none_or(|f| f.function.is_none());
    if in_text
        && unnamed
        && let Some(sym) = loader.find_symbol(probe)
    {
        let name = Some(demangle(sym));
        match out.last_mut() {
            Some(f) => f.function = name,
            None => out.push(Frame {
                function: name,
                file: None,
                line: None,
                column: None,
                inlined: false,
            }),
        }
    }
    if out.iter().all(|f| f.function.is_none() && f.file.is_none()) {
        out.clear();
    }
    out
}

/// A Rust symbol demangled without its hash; other names as they are.
fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function of this test binary whose address the tests look up.
    #[inline(never)]
    fn a_known_function(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(31).rotate_left(7)
    }

    fn this_exe() -> PathBuf {
        std::env::current_exe().expect("the test binary's path")
    }

    #[test]
    fn recognises_frame_and_register_lines() {
        assert_eq!(frame_address("#0 0x0000000000201234"), Some(0x201234));
        assert_eq!(frame_address("#17 0x00000000002abcde"), Some(0x2abcde));
        assert_eq!(frame_address("# 0x1"), None);
        assert_eq!(frame_address("#x 0x1"), None);
        assert_eq!(frame_address("#1 1234"), None);
        assert_eq!(frame_address("ebbrt-test: [0] a ... ok"), None);
        assert_eq!(
            register_rip("  rip 0x0000000000205678  rsp 0x0000000000401000  rflags 0x00000002"),
            Some(0x205678)
        );
        assert_eq!(register_rip("  rax 0x1"), None);
    }

    /// The address of [`a_known_function`] in the test binary's image:
    /// its runtime address, less the load bias of a position-independent
    /// executable.
    fn link_address_of_known_function() -> u64 {
        let runtime = a_known_function as fn(u64) -> u64 as usize as u64;
        let loader = addr2line::Loader::new(this_exe()).expect("the test binary loads");
        let text = loader.get_section_range(b".text").expect("a .text section");
        if (text.begin..text.end).contains(&runtime) {
            return runtime;
        }
        // SAFETY: `Dl_info` is plain pointers, for which zero is valid.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr(3) only looks the address up and fills `info`.
        let found = unsafe { libc::dladdr(runtime as usize as *const libc::c_void, &mut info) };
        assert_ne!(found, 0, "dladdr found no object at {runtime:#x}");
        runtime - info.dli_fbase as usize as u64
    }

    #[test]
    fn symbolizes_a_function_of_this_binary() {
        // Keep the function linked and called.
        assert_ne!(a_known_function(3), 0);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut s = Symbolizer::new(this_exe(), Some(root));
        // A return address 4 bytes into the function: `addr - 1` is in it.
        let line = format!("    #0 {:#018x}", link_address_of_known_function() + 4);
        assert!(s.annotate("some console line").is_empty());
        assert!(s.annotate(&line).is_empty(), "no header yet");
        assert!(
            s.annotate(&format!(
                "  {HEADER_MARK}; addr2line -e <image> -f -C ADDR):"
            ))
            .is_empty()
        );
        let out = s.annotate(&line);
        let last = out.last().unwrap_or_else(|| panic!("no frames for {line}"));
        assert!(
            last.starts_with(&format!(
                "{INDENT}cargo_ebbrt::symbolize::tests::a_known_function at \
                 src/symbolize.rs:"
            )),
            "{out:?}"
        );
        assert!(!last.contains("(inlined)"), "{out:?}");
        // A folded run keeps the backtrace going; any other line ends it.
        assert!(
            s.annotate("    ... the same address 3 more times")
                .is_empty()
        );
        assert_eq!(s.annotate(&line), out);
        assert!(s.annotate("ebbrt-test: [1] b ... ok").is_empty());
        assert!(s.annotate(&line).is_empty(), "outside a backtrace");
    }

    #[test]
    fn failures_add_nothing() {
        // An image that does not exist.
        let mut s = Symbolizer::new("/nonexistent/kernel", None);
        assert!(s.annotate(&format!("  {HEADER_MARK}; ...):")).is_empty());
        assert!(s.annotate("    #0 0x0000000000201234").is_empty());
        // A file that is not an ELF image.
        let mut s = Symbolizer::new(file!(), None);
        s.annotate(HEADER_MARK);
        assert!(s.annotate("    #0 0x0000000000201234").is_empty());
        // An address outside the image.
        let mut s = Symbolizer::new(this_exe(), None);
        s.annotate(HEADER_MARK);
        assert!(s.annotate("    #0 0xfffffffffffff000").is_empty());
        assert!(s.annotate("    #1 0x0000000000000000").is_empty());
        assert!(s.annotate("    #2 0xffffffffffffffff").is_empty());
        s.annotate("  rip 0xffffffffffffffff  rsp 0x1");
        s.annotate(HEADER_MARK);
        assert!(s.annotate("    #0 0xffffffffffffffff").is_empty());
    }

    #[test]
    fn a_faults_first_frame_is_looked_up_exactly() {
        let mut s = Symbolizer::new("/nonexistent/kernel", None);
        s.annotate("  rip 0x0000000000201234  rsp 0x1  rflags 0x2  cs 0x8  ss 0x10");
        assert_eq!(s.fault_rip, Some(0x201234));
        s.annotate(HEADER_MARK);
        s.annotate("    #0 0x0000000000201234");
        assert_eq!(s.fault_rip, None, "used by #0");
    }
}
