//! Password files written by Debian's `mosquitto_passwd` verify with our reader, with every hash
//! kind it can write. Skips (with a notice) when the tool is not installed.

use std::process::Command;

use mqtt_tokio::auth::password::PasswordFile;

fn mosquitto_passwd(args: &[&str]) -> Option<()> {
    match Command::new("mosquitto_passwd").args(args).status() {
        Ok(status) if status.success() => Some(()),
        Ok(status) => panic!("mosquitto_passwd {args:?} failed: {status}"),
        Err(_) => {
            eprintln!("notice: mosquitto_passwd not installed; skipping");
            None
        }
    }
}

#[test]
fn files_written_by_mosquitto_passwd_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let file = path.to_str().unwrap();
    let Some(()) = mosquitto_passwd(&["-c", "-b", file, "alice", "s3cret"]) else {
        return;
    };
    mosquitto_passwd(&["-b", "-H", "sha512", file, "bob", "hunter2"]).unwrap();
    mosquitto_passwd(&["-b", "-I", "1000", file, "gerät", "pässwörd"]).unwrap();

    let (users, warnings) = PasswordFile::load(&path).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(users.len(), 3);
    assert!(users.verify("alice", b"s3cret"));
    assert!(!users.verify("alice", b"s3cret "));
    assert!(users.verify("bob", b"hunter2"));
    assert!(!users.verify("bob", b"s3cret"));
    assert!(users.verify("gerät", "pässwörd".as_bytes()));
}
