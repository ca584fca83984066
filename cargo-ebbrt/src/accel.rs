//! Which QEMU accelerator to use, and why.
//!
//! KVM only where the CPU advertises hardware virtualization (`vmx` or `svm`
//! in `/proc/cpuinfo`) *and* `/dev/kvm` opens. A `/dev/kvm` without those
//! flags is a software hypervisor (PVM on the machines this project is
//! developed on) that emulates every ring-0 instruction and is far slower
//! than TCG, so it is never chosen on its own. Everything else uses
//! multi-threaded TCG. `--accel` overrides the choice.

use std::fmt;

/// A QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization through `/dev/kvm`.
    Kvm,
    /// QEMU's software emulator, one host thread per vCPU.
    Tcg,
}

impl Accel {
    /// The QEMU arguments that select this accelerator.
    pub fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg,thread=multi"],
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The accelerator chosen and the sentence that explains the choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The accelerator.
    pub accel: Accel,
    /// Why, for the one line the tool prints.
    pub reason: String,
}

/// The hardware-virtualization flag (`vmx` or `svm`) in `/proc/cpuinfo` text.
pub fn hw_virt_flag(cpuinfo: &str) -> Option<&'static str> {
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim() != "flags" {
            continue;
        }
        for flag in value.split_whitespace() {
            match flag {
                "vmx" => return Some("vmx"),
                "svm" => return Some("svm"),
                _ => {}
            }
        }
    }
    None
}

/// Decides. `cpuinfo` is `/proc/cpuinfo` (None when unreadable), `kvm` is
/// the result of opening `/dev/kvm` read-write (the error text otherwise).
pub fn choose(requested: Option<Accel>, cpuinfo: Option<&str>, kvm: Result<(), String>) -> Choice {
    let flag = cpuinfo.and_then(hw_virt_flag);
    let (accel, reason) = match (requested, flag, kvm) {
        (Some(Accel::Tcg), _, _) => (
            Accel::Tcg,
            "tcg (multi-threaded), as requested with --accel tcg".into(),
        ),
        (Some(Accel::Kvm), Some(_), Ok(())) => {
            (Accel::Kvm, "kvm, as requested with --accel kvm".into())
        }
        (Some(Accel::Kvm), None, _) => (
            Accel::Kvm,
            "kvm, as requested with --accel kvm; warning: the CPU advertises no vmx/svm, \
             so /dev/kvm (if any) is not hardware KVM"
                .into(),
        ),
        (Some(Accel::Kvm), Some(_), Err(e)) => (
            Accel::Kvm,
            format!("kvm, as requested with --accel kvm; warning: /dev/kvm does not open ({e})"),
        ),
        (None, Some(flag), Ok(())) => (
            Accel::Kvm,
            format!("kvm: the CPU offers hardware virtualization ({flag}) and /dev/kvm opens"),
        ),
        (None, Some(flag), Err(e)) => (
            Accel::Tcg,
            format!(
                "tcg (multi-threaded): the CPU offers {flag} but /dev/kvm does not open ({e}); \
                 --accel kvm to force"
            ),
        ),
        (None, None, Ok(())) => (
            Accel::Tcg,
            "tcg (multi-threaded): the CPU advertises no vmx/svm, so /dev/kvm here is a \
             software hypervisor, slower than TCG; --accel kvm to force"
                .into(),
        ),
        (None, None, Err(_)) => (
            Accel::Tcg,
            "tcg (multi-threaded): the CPU offers no hardware virtualization (no vmx/svm)".into(),
        ),
    };
    Choice { accel, reason }
}

/// Reads this machine's `/proc/cpuinfo` and `/dev/kvm` and decides.
pub fn detect(requested: Option<Accel>) -> Choice {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok();
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| e.to_string());
    choose(requested, cpuinfo.as_deref(), kvm)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL: &str =
        "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr vmx sse2\n\n";
    const AMD: &str = "processor\t: 0\nflags\t\t: fpu svm sse2\n";
    const NONE: &str =
        "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr sse2 hypervisor\nvmx flags\t: vnmi\n";

    #[test]
    fn flag_detection() {
        assert_eq!(hw_virt_flag(INTEL), Some("vmx"));
        assert_eq!(hw_virt_flag(AMD), Some("svm"));
        // "vmx flags" is a different key, and substrings do not count.
        assert_eq!(hw_virt_flag(NONE), None);
        assert_eq!(hw_virt_flag("flags : vmxx svmm\n"), None);
        assert_eq!(hw_virt_flag(""), None);
    }

    #[test]
    fn kvm_only_with_hardware_virtualization_and_an_openable_dev_kvm() {
        assert_eq!(choose(None, Some(INTEL), Ok(())).accel, Accel::Kvm);
        assert_eq!(choose(None, Some(AMD), Ok(())).accel, Accel::Kvm);
        let pvm = choose(None, Some(NONE), Ok(()));
        assert_eq!(pvm.accel, Accel::Tcg);
        assert!(pvm.reason.contains("software hypervisor"), "{}", pvm.reason);
        let denied = choose(None, Some(INTEL), Err("Permission denied".into()));
        assert_eq!(denied.accel, Accel::Tcg);
        assert!(denied.reason.contains("Permission denied"));
        assert_eq!(choose(None, None, Ok(())).accel, Accel::Tcg);
        assert_eq!(choose(None, None, Err("absent".into())).accel, Accel::Tcg);
    }

    #[test]
    fn override_wins_and_warns() {
        assert_eq!(
            choose(Some(Accel::Tcg), Some(INTEL), Ok(())).accel,
            Accel::Tcg
        );
        let forced = choose(Some(Accel::Kvm), Some(NONE), Ok(()));
        assert_eq!(forced.accel, Accel::Kvm);
        assert!(forced.reason.contains("warning"));
        let clean = choose(Some(Accel::Kvm), Some(AMD), Ok(()));
        assert!(!clean.reason.contains("warning"));
    }

    #[test]
    fn qemu_arguments() {
        assert_eq!(Accel::Tcg.qemu_args(), ["-accel", "tcg,thread=multi"]);
        assert_eq!(Accel::Kvm.qemu_args(), ["-accel", "kvm", "-cpu", "host"]);
    }
}
