//! Parsing `/proc/self/mountinfo` (no `findmnt` needed).

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique ID of the mount (field 1), which children's `parent_id` refers to.
    pub mount_id: u32,
    /// ID of the mount this one is mounted on (field 2).
    pub parent_id: u32,
    /// Major number of the device holding the filesystem (`st_dev`).
    pub major: u32,
    /// Minor number of the device holding the filesystem.
    pub minor: u32,
    /// Path inside the filesystem that is mounted (not `/` for bind mounts of a subtree/file).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`/`ro`, `nosuid`, ...).
    pub mount_options: Vec<String>,
    /// Filesystem type (`ext4`, `xfs`, `tmpfs`, …), as `mount -t` names it.
    pub fs_type: String,
    /// Mount source (device path for block filesystems).
    pub source: String,
    /// Per-superblock options (`rw`/`ro` here means the filesystem itself).
    pub super_options: Vec<String>,
}

impl MountEntry {
    /// Whether this mount is read-only (per-mount flag).
    pub fn mount_read_only(&self) -> bool {
        self.mount_options.iter().any(|o| o == "ro")
    }

    /// Whether the filesystem itself is read-only (superblock flag), as after an I/O error with
    /// `errors=remount-ro`.
    pub fn filesystem_read_only(&self) -> bool {
        self.super_options.iter().any(|o| o == "ro")
    }
}

/// Decodes the octal escapes mountinfo uses for space, tab, newline and backslash.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = s.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let mount_id = l.next()?.parse().ok()?;
    let parent_id = l.next()?.parse().ok()?;
    let (major, minor) = l.next()?.split_once(':')?;
    let root = unescape(l.next()?);
    let mount_point = PathBuf::from(unescape(l.next()?));
    let mount_options = l.next()?.split(',').map(String::from).collect();
    let mut r = right.split(' ');
    let fs_type = r.next()?.to_string();
    let source = unescape(r.next()?);
    let super_options = r.next().unwrap_or("").split(',').map(String::from).collect();
    Some(MountEntry {
        mount_id,
        parent_id,
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root,
        mount_point,
        mount_options,
        fs_type,
        source,
        super_options,
    })
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// The topmost mount at `path` (the last one listed), if any. `path` should be canonical.
pub fn mount_at<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    mounts.iter().rev().find(|m| m.mount_point == path)
}

/// All mounts whose filesystem lives on device `major:minor`.
pub fn mounts_of_device(mounts: &[MountEntry], major: u32, minor: u32) -> Vec<&MountEntry> {
    mounts.iter().filter(|m| m.major == major && m.minor == minor).collect()
}

/// Reads and parses the mountinfo file at `path` (normally `/proc/self/mountinfo`).
pub async fn read_mountinfo(path: &Path) -> std::io::Result<Vec<MountEntry>> {
    Ok(parse_mountinfo(&tokio::fs::read_to_string(path).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
36 27 7:3 / /var/lib/kubelet/plugins/stage/pv\\0401 rw,relatime shared:5 - ext4 /dev/loop3 rw,errors=remount-ro
37 27 7:3 / /var/lib/kubelet/pods/p/volumes/v ro,relatime - ext4 /dev/loop3 rw
38 27 0:6 /loop4 /var/lib/kubelet/block/pub rw - devtmpfs udev rw,size=1k
39 27 7:3 / /var/lib/kubelet/pods/p/volumes/v rw,relatime - ext4 /dev/loop3 ro
garbage line
";

    #[test]
    fn parses_fields_and_escapes() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 5);
        assert_eq!(m[1].mount_point, PathBuf::from("/var/lib/kubelet/plugins/stage/pv 1"));
        assert_eq!((m[1].major, m[1].minor), (7, 3));
        assert_eq!(m[1].source, "/dev/loop3");
        assert_eq!(m[1].fs_type, "ext4");
        assert!(!m[1].mount_read_only() && !m[1].filesystem_read_only());
        assert!(m[2].mount_read_only() && !m[2].filesystem_read_only());
        assert_eq!(m[3].root, "/loop4");
        assert!(m[4].filesystem_read_only());
    }

    #[test]
    fn topmost_mount_wins() {
        let m = parse_mountinfo(SAMPLE);
        let top = mount_at(&m, Path::new("/var/lib/kubelet/pods/p/volumes/v")).unwrap();
        assert_eq!(top.mount_id, 39);
        assert!(mount_at(&m, Path::new("/nope")).is_none());
        assert_eq!(mounts_of_device(&m, 7, 3).len(), 3);
    }

    #[test]
    fn unescape_table() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("tab\\011x\\012"), "tab\tx\n");
        assert_eq!(unescape("trailing\\"), "trailing\\");
        assert_eq!(unescape("bad\\9zz"), "bad\\9zz");
    }
}
