//! The mass-storage mapping: where a recording the recorder lists as `name`
//! lies on its USB mass-storage volume (GA/T 947 `SetMSDC`), and which names
//! have a place there at all.
//!
//! A name maps to the path of the same name relative to the volume's root,
//! `/` separating folders. Only *plain* names map: the rule below admits
//! what a FAT/exFAT volume can hold and nothing that could point outside
//! the volume. A recording with any other name is still a recording; it is
//! only not on the volume, and the dock reads it over the serial line.
//! Both sides use this one rule: the recorder (and `evsync-recorder-sim`)
//! to decide what it exposes, the dock to decide what it looks for.

/// Longest component (file or folder name), bytes: Linux's `NAME_MAX`, and
/// within FAT's 255 UTF-16 units for any UTF-8 name this long.
pub const MAX_COMPONENT: usize = 255;
/// Longest whole relative path, bytes.
pub const MAX_PATH: usize = 1024;
/// Deepest folder nesting (components, the file included).
pub const MAX_DEPTH: usize = 8;

/// Why a name has no place on the volume.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unplain {
    /// Empty name.
    #[error("empty name")]
    Empty,
    /// Starts with `/`: an absolute path.
    #[error("absolute path")]
    Absolute,
    /// Longer than [`MAX_PATH`] or a component longer than [`MAX_COMPONENT`], or deeper than [`MAX_DEPTH`].
    #[error("too long or too deep")]
    TooLong,
    /// An empty component (`a//b`, trailing `/`), `.` or `..`.
    #[error("empty, `.` or `..` component")]
    Dots,
    /// A control character (C0, DEL or C1).
    #[error("control character")]
    Control,
    /// A character FAT cannot hold (`\ : * ? " < > |`), or a component
    /// ending in a dot or a space (FAT drops them, so two names would meet).
    #[error("character a FAT volume cannot hold")]
    NotFat,
}

/// The components of `name` as a path relative to the volume root, if it
/// is a plain name: non-empty, relative, no `.`/`..`/empty components, no
/// control characters, no character FAT cannot hold, no component ending in
/// `.` or space, components of at most [`MAX_COMPONENT`] bytes, at most
/// [`MAX_DEPTH`] of them, [`MAX_PATH`] bytes in all.
pub fn components(name: &str) -> Result<Vec<&str>, Unplain> {
    if name.is_empty() {
        return Err(Unplain::Empty);
    }
    if name.starts_with('/') {
        return Err(Unplain::Absolute);
    }
    if name.len() > MAX_PATH {
        return Err(Unplain::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(Unplain::Control);
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > MAX_DEPTH {
        return Err(Unplain::TooLong);
    }
    for part in &parts {
        if part.is_empty() || *part == "." || *part == ".." {
            return Err(Unplain::Dots);
        }
        if part.len() > MAX_COMPONENT {
            return Err(Unplain::TooLong);
        }
        if part.contains(['\\', ':', '*', '?', '"', '<', '>', '|']) || part.ends_with(['.', ' ']) {
            return Err(Unplain::NotFat);
        }
    }
    Ok(parts)
}

/// Whether `name` has a place on the volume (see [`components`]).
pub fn is_plain(name: &str) -> bool {
    components(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_names_and_folders_map_to_themselves() {
        for name in [
            "ZFY0001_20261123083000_0001.MP4",
            "DCIM/100ZFY01/VID_0001.MP4",
            "执法记录_0001.MP4",
            "a.b.c.MP4",
        ] {
            assert_eq!(components(name).map(|c| c.join("/")), Ok(name.to_owned()));
        }
        assert_eq!(
            components(&format!("{}.MP4", "L".repeat(251))).map(|c| c.len()),
            Ok(1)
        );
    }

    #[test]
    fn names_that_could_leave_the_volume_or_that_fat_cannot_hold_do_not_map() {
        for (name, why) in [
            ("", Unplain::Empty),
            ("/etc/passwd", Unplain::Absolute),
            ("/var/lib/evsync/agent.key.MP4", Unplain::Absolute),
            ("../../../../etc/cron.d/evil.MP4", Unplain::Dots),
            ("..", Unplain::Dots),
            (".", Unplain::Dots),
            ("a/../b.MP4", Unplain::Dots),
            ("a//b.MP4", Unplain::Dots),
            ("dir/", Unplain::Dots),
            ("bell\u{7}new\nline\u{1b}[31m.MP4", Unplain::Control),
            ("nul\0.MP4", Unplain::Control),
            ("c1\u{85}.MP4", Unplain::Control),
            ("del\u{7f}.MP4", Unplain::Control),
            ("C:\\Windows\\win.ini.MP4", Unplain::NotFat),
            ("a\\..\\b.MP4", Unplain::NotFat),
            ("what?.MP4", Unplain::NotFat),
            ("trailing.", Unplain::NotFat),
            ("trailing ", Unplain::NotFat),
        ] {
            assert_eq!(components(name), Err(why), "{name:?}");
        }
    }

    #[test]
    fn very_long_names_and_deep_folders_do_not_map() {
        assert_eq!(
            components(&format!("{}.MP4", "L".repeat(252))),
            Err(Unplain::TooLong)
        );
        // 256 bytes in 86 three-byte characters.
        assert_eq!(components(&"录".repeat(86)).err(), Some(Unplain::TooLong));
        let long_path = vec!["d".repeat(200); 6].join("/");
        assert_eq!(components(&long_path), Err(Unplain::TooLong));
        assert_eq!(
            components(&format!("{}x", "d/".repeat(8))),
            Err(Unplain::TooLong)
        );
    }
}
