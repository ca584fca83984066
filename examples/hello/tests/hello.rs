//! Runs the hello binary as a user would and checks what it prints.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hello"))
        .args(args)
        .env_remove("EBBRT_CORES")
        .env_remove("EBBRT_ARGS")
        .output()
        .expect("run hello");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn greets_once_from_every_core_and_sums_through_the_root() {
    for cores in [1u64, 2, 3] {
        let (code, stdout, stderr) = run(&["--cores", &cores.to_string()]);
        assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
        let mut greeted: Vec<u64> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("hello from core "))
            .map(|rest| {
                let (core, of) = rest.split_once(" of ").expect("`hello from core I of N`");
                assert_eq!(of.parse::<u64>().unwrap(), cores, "{stdout}");
                core.parse().unwrap()
            })
            .collect();
        greeted.sort();
        assert_eq!(greeted, (0..cores).collect::<Vec<_>>(), "{stdout}");
        let total = 1000 * cores * (cores + 1) / 2;
        assert!(
            stdout.contains(&format!("total {total} bumps from {cores} cores\n")),
            "{stdout}"
        );
    }
}

#[test]
fn a_bad_core_count_is_refused() {
    let (code, stdout, stderr) = run(&["--cores", "none"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert!(stderr.contains("invalid core count `none`"), "{stderr}");
}
