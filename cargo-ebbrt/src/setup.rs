//! What a native build and boot need from the machine, installed when the
//! tool can do it safely and named exactly when it cannot.
//!
//! - `rust-src` for the nightly toolchain: `-Zbuild-std` compiles `core` and
//!   `alloc` from it. With `RUSTUP_AUTO_INSTALL=0` the `components` line of
//!   `rust-toolchain.toml` does not install it, so the tool runs
//!   `rustup component add rust-src --toolchain nightly` itself.
//! - `qemu-system-x86_64`: as root on Debian/Ubuntu the tool installs
//!   `qemu-system-x86` with apt-get; elsewhere it stops with the command to run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::qemu::QEMU;

/// Makes sure the active toolchain has `rust-src`.
pub fn ensure_rust_src(root: &Path) -> Result<(), Error> {
    let sysroot = sysroot(root)?;
    if has_rust_src(&sysroot) {
        return Ok(());
    }
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    let args = ["component", "add", "rust-src", "--toolchain", &toolchain];
    crate::note(&format!(
        "the rust-src component is missing (-Zbuild-std needs it); running `rustup {}`",
        args.join(" ")
    ));
    let status = Command::new("rustup")
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| {
            Error::Tool(format!(
                "cannot run rustup ({e}); run `rustup {}` yourself",
                args.join(" ")
            ))
        })?;
    if !status.success() || !has_rust_src(&sysroot) {
        return Err(Error::Tool(format!(
            "`rustup {}` did not install rust-src into {}",
            args.join(" "),
            sysroot.display()
        )));
    }
    Ok(())
}

fn sysroot(root: &Path) -> Result<PathBuf, Error> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(root)
        .output()
        .map_err(|e| Error::Tool(format!("cannot run rustc: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "`rustc --print sysroot` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Where rust-src puts the standard library's sources (what build-std reads).
pub fn has_rust_src(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib/src/rust/library/Cargo.lock")
        .is_file()
}

/// Finds `name` in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What to do about a missing QEMU.
#[derive(Debug, PartialEq, Eq)]
pub enum QemuPlan {
    /// Install `qemu-system-x86` with apt-get (root on Debian/Ubuntu).
    AptInstall,
    /// Stop and tell the user this command.
    Tell(String),
}

/// Decides from the facts of the machine: running as root, apt-get present,
/// and `/etc/os-release`.
pub fn qemu_plan(root: bool, apt_get: bool, os_release: &str) -> QemuPlan {
    let mut ids = Vec::new();
    for line in os_release.lines() {
        if let Some(v) = line
            .strip_prefix("ID=")
            .or_else(|| line.strip_prefix("ID_LIKE="))
        {
            ids.extend(v.trim_matches('"').split_whitespace().map(str::to_string));
        }
    }
    let like = |names: &[&str]| ids.iter().any(|id| names.contains(&id.as_str()));
    if like(&["debian", "ubuntu"]) || (ids.is_empty() && apt_get) {
        return if root && apt_get {
            QemuPlan::AptInstall
        } else {
            QemuPlan::Tell("sudo apt-get install qemu-system-x86".into())
        };
    }
    let sudo = if root { "" } else { "sudo " };
    let cmd = if like(&["fedora", "rhel", "centos"]) {
        format!("{sudo}dnf install qemu-system-x86-core")
    } else if like(&["arch"]) {
        format!("{sudo}pacman -S qemu-system-x86")
    } else if like(&["suse", "opensuse"]) {
        format!("{sudo}zypper install qemu-x86")
    } else if like(&["alpine"]) {
        format!("{sudo}apk add qemu-system-x86_64")
    } else {
        return QemuPlan::Tell(format!(
            "(this system is not one the tool knows) install QEMU with your package \
             manager so that {QEMU} is on PATH"
        ));
    };
    QemuPlan::Tell(cmd)
}

/// Finds QEMU, installing it where [`qemu_plan`] says so.
pub fn ensure_qemu() -> Result<PathBuf, Error> {
    if let Some(p) = find_in_path(QEMU) {
        return Ok(p);
    }
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let apt_get = find_in_path("apt-get").is_some();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    match qemu_plan(root, apt_get, &os_release) {
        QemuPlan::Tell(cmd) => Err(Error::Tool(format!(
            "{QEMU} is not installed; install it with\n\n    {cmd}\n\nand run this again"
        ))),
        QemuPlan::AptInstall => {
            crate::note(&format!(
                "{QEMU} is not installed; installing qemu-system-x86 with apt-get (running as root)"
            ));
            apt_get_run(&["update", "-q"])?;
            apt_get_run(&[
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "qemu-system-x86",
            ])?;
            find_in_path(QEMU).ok_or_else(|| {
                Error::Tool(format!(
                    "apt-get installed qemu-system-x86, yet {QEMU} is still not on PATH"
                ))
            })
        }
    }
}

fn apt_get_run(args: &[&str]) -> Result<(), Error> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| Error::Tool(format!("cannot run apt-get: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Tool(format!(
            "`apt-get {}` failed ({status}); see its messages above",
            args.join(" ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str =
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
    const UBUNTU: &str = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n";
    const MINT: &str = "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n";
    const FEDORA: &str = "ID=fedora\n";
    const ROCKY: &str = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
    const ARCH: &str = "ID=arch\n";

    #[test]
    fn root_on_debian_installs() {
        assert_eq!(qemu_plan(true, true, DEBIAN), QemuPlan::AptInstall);
        assert_eq!(qemu_plan(true, true, UBUNTU), QemuPlan::AptInstall);
        assert_eq!(qemu_plan(true, true, MINT), QemuPlan::AptInstall);
    }

    #[test]
    fn everyone_else_is_told_the_command() {
        let tell = |s: &str| QemuPlan::Tell(s.into());
        assert_eq!(
            qemu_plan(false, true, DEBIAN),
            tell("sudo apt-get install qemu-system-x86")
        );
        assert_eq!(
            qemu_plan(true, false, DEBIAN),
            tell("sudo apt-get install qemu-system-x86")
        );
        assert_eq!(
            qemu_plan(false, false, FEDORA),
            tell("sudo dnf install qemu-system-x86-core")
        );
        assert_eq!(
            qemu_plan(true, false, ROCKY),
            tell("dnf install qemu-system-x86-core")
        );
        assert_eq!(
            qemu_plan(false, false, ARCH),
            tell("sudo pacman -S qemu-system-x86")
        );
        let QemuPlan::Tell(other) = qemu_plan(false, false, "ID=plan9\n") else {
            panic!()
        };
        assert!(other.contains("qemu-system-x86_64 is on PATH"));
    }

    #[test]
    fn rust_src_detection() {
        let dir = std::env::temp_dir().join(format!("cargo-ebbrt-sysroot-{}", std::process::id()));
        let lib = dir.join("lib/rustlib/src/rust/library");
        std::fs::create_dir_all(&lib).unwrap();
        assert!(!has_rust_src(&dir));
        std::fs::write(lib.join("Cargo.lock"), "").unwrap();
        assert!(has_rust_src(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn path_lookup() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("surely-no-such-program-ebbrt").is_none());
    }
}
