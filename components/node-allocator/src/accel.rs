//! KVM or TCG for a node.
//!
//! KVM only where the CPU advertises hardware virtualization (`vmx` or
//! `svm` on a `flags` line of `/proc/cpuinfo`) and `/dev/kvm` opens
//! read-write; a `/dev/kvm` without those flags is a software hypervisor,
//! slower than TCG. Everything else is multi-threaded TCG.

/// A QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// QEMU's emulator, one host thread per vCPU.
    Tcg,
}

impl Accel {
    /// Decides for this machine.
    pub fn detect() -> Accel {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let kvm_opens = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        Accel::choose(&cpuinfo, kvm_opens)
    }

    /// Decides from `/proc/cpuinfo`'s text and whether `/dev/kvm` opens.
    pub fn choose(cpuinfo: &str, kvm_opens: bool) -> Accel {
        let hw = cpuinfo.lines().any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim() == "flags" && v.split_whitespace().any(|f| f == "vmx" || f == "svm")
            })
        });
        if hw && kvm_opens {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// Its QEMU arguments.
    pub fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg,thread=multi"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_needs_both_the_flag_and_the_device() {
        let vmx = "flags\t\t: fpu vmx sse2\n";
        let none = "flags\t\t: fpu sse2 hypervisor\nvmx flags\t: vnmi\n";
        assert_eq!(Accel::choose(vmx, true), Accel::Kvm);
        assert_eq!(Accel::choose("flags : svm\n", true), Accel::Kvm);
        assert_eq!(Accel::choose(vmx, false), Accel::Tcg);
        assert_eq!(Accel::choose(none, true), Accel::Tcg);
        assert_eq!(Accel::choose("flags : vmxx\n", true), Accel::Tcg);
    }
}
