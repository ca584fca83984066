//! The QEMU command line of a native boot.
//!
//! [`Boot`] describes one boot (kernel, accelerator, cores, memory, command
//! line) and [`Boot::args`] renders it, one group of arguments per concern,
//! in a fixed order. Devices beyond the console and the exit port are
//! further groups: networking (`--net user:hostfwd=...`, `--net tap`) will
//! be a field holding the chosen backend and one more group rendering
//! `-netdev ...` plus `-device virtio-net-pci,...`, without touching the
//! others.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::accel::Accel;

/// Name of the QEMU binary the tool runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// I/O port of the `isa-debug-exit` device; the native runtime writes its
/// exit code there (see CONTRACTS.md).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Default guest memory.
pub const DEFAULT_MEM: MemSize = MemSize {
    amount: 256,
    unit: 'M',
};

/// A guest memory size in QEMU's `-m` syntax: a number and a unit (K, M, G).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemSize {
    amount: u64,
    unit: char,
}

impl MemSize {
    /// Parses `512M`, `1G`, `1g`, `2048` (MiB, as QEMU reads a bare number).
    pub fn parse(s: &str) -> Result<MemSize, String> {
        let s = s.trim();
        let (digits, unit) = match s.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_uppercase()),
            _ => (s, 'M'),
        };
        if !matches!(unit, 'K' | 'M' | 'G') {
            return Err(format!("unknown unit `{unit}` (use K, M or G)"));
        }
        let amount: u64 = digits
            .parse()
            .map_err(|_| "expected a whole number and a unit, e.g. 256M or 1G".to_string())?;
        let size = MemSize { amount, unit };
        // The native kernel needs room for its page tables, heap and stacks.
        if size.mib() < 32 {
            return Err("too small: a native image needs at least 32M".into());
        }
        if size.mib() > 1 << 20 {
            return Err("too large (more than 1T)".into());
        }
        Ok(size)
    }

    /// The size in MiB (rounded down).
    pub fn mib(&self) -> u64 {
        match self.unit {
            'K' => self.amount / 1024,
            'G' => self.amount.saturating_mul(1024),
            _ => self.amount,
        }
    }
}

impl fmt::Display for MemSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit)
    }
}

/// One boot of a native image.
#[derive(Clone, Debug)]
pub struct Boot {
    /// The ELF image (booted through its PVH note).
    pub kernel: PathBuf,
    /// The accelerator.
    pub accel: Accel,
    /// Number of vCPUs.
    pub cores: u32,
    /// Guest memory.
    pub mem: MemSize,
    /// The kernel command line (`-append`); empty for none.
    pub append: String,
}

impl Boot {
    /// The arguments after `qemu-system-x86_64`.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(OsString::from));
        // Machine and accelerator.
        push(self.accel.qemu_args());
        push(&["-smp", &self.cores.to_string(), "-m", &self.mem.to_string()]);
        // Console: no default devices (no NIC with its option ROM, no VGA,
        // no monitor), no window, the guest's first serial port and QEMU's
        // debug console (port 0xe9, the `console-debugcon` component) both
        // on this process's stdio through one multiplexed character
        // device, and no reboot on a triple fault so that a crash ends the
        // run. Not -nographic: with it SeaBIOS writes its banner and
        // terminal-reset sequences to the serial console.
        push(&[
            "-nodefaults",
            "-display",
            "none",
            "-chardev",
            "stdio,id=console,mux=on",
            "-serial",
            "chardev:console",
            "-device",
            "isa-debugcon,iobase=0xe9,chardev=console",
            "-no-reboot",
        ]);
        // Exit port: the application's exit code becomes QEMU's status.
        let exit_dev = format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04");
        push(&["-device", &exit_dev]);
        // Kernel and command line.
        a.push("-kernel".into());
        a.push(self.kernel.clone().into_os_string());
        if !self.append.is_empty() {
            a.push("-append".into());
            a.push(self.append.clone().into());
        }
        a
    }

    /// The command line as a shell would show it, for the log line.
    pub fn display(&self, qemu: &Path) -> String {
        let mut cmd = Command::new(qemu);
        cmd.args(self.args());
        command_line(&cmd)
    }
}

/// A command as a shell would show it (arguments quoted where needed).
pub fn command_line(cmd: &Command) -> String {
    let mut out = Path::new(cmd.get_program()).display().to_string();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        out.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
            out.push('\'');
            out.push_str(&arg.replace('\'', r"'\''"));
            out.push('\'');
        } else {
            out.push_str(&arg);
        }
    }
    out
}

/// Joins boot arguments, dropping empty pieces.
pub fn join_append<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> Boot {
        Boot {
            kernel: "/t/hello".into(),
            accel: Accel::Tcg,
            cores: 2,
            mem: DEFAULT_MEM,
            append: String::new(),
        }
    }

    fn strs(b: &Boot) -> Vec<String> {
        b.args()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn default_command_line() {
        assert_eq!(
            strs(&boot()).join(" "),
            "-accel tcg,thread=multi -smp 2 -m 256M \
             -nodefaults -display none -chardev stdio,id=console,mux=on \
             -serial chardev:console -device isa-debugcon,iobase=0xe9,chardev=console -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel /t/hello"
        );
    }

    #[test]
    fn append_kvm_and_sizes() {
        let b = Boot {
            accel: Accel::Kvm,
            cores: 4,
            mem: MemSize::parse("1g").unwrap(),
            append: "ebbrt.test.start=3 ebbrt.log=debug".into(),
            ..boot()
        };
        let a = strs(&b);
        assert_eq!(&a[..4], ["-accel", "kvm", "-cpu", "host"]);
        assert!(a.windows(2).any(|w| w == ["-smp", "4"]));
        assert!(a.windows(2).any(|w| w == ["-m", "1G"]));
        assert_eq!(
            &a[a.len() - 2..],
            ["-append", "ebbrt.test.start=3 ebbrt.log=debug"]
        );
        assert!(
            b.display(Path::new(QEMU))
                .ends_with("-append 'ebbrt.test.start=3 ebbrt.log=debug'")
        );
    }

    #[test]
    fn mem_sizes() {
        assert_eq!(MemSize::parse("256M").unwrap().to_string(), "256M");
        assert_eq!(MemSize::parse("512").unwrap().to_string(), "512M");
        assert_eq!(MemSize::parse("65536k").unwrap().to_string(), "65536K");
        assert!(MemSize::parse("1T").unwrap_err().contains("unknown unit"));
        assert!(MemSize::parse("16M").unwrap_err().contains("too small"));
        assert!(MemSize::parse("M").is_err());
        assert!(MemSize::parse("-5M").is_err());
        assert!(MemSize::parse("").is_err());
        assert!(
            MemSize::parse("99999999999G")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn join() {
        assert_eq!(join_append(["", " a=1 ", "b=2"]), "a=1 b=2");
        assert_eq!(join_append([""]), "");
    }
}
