//! Headless Chromium for the dashboard tests: a page's DOM after its
//! scripts ran, a screenshot decoded, checks that it is a real rendering.
//! Each run has its own profile and its own process group, killed after it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Width of the browser window, as the screenshots must measure.
pub const WIDTH: u32 = 1400;
/// Height of the browser window.
pub const HEIGHT: u32 = 1000;
/// Longest a Chromium run may take.
pub const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(45);
/// `chromium` on the PATH, or a failure that says how to install it.
pub fn chromium() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: run scripts/setup (as root) to install Debian's \
                 chromium package; this test renders the dashboard in headless Chromium"
            )
        })
}

/// Starts headless Chromium on `url` with the profile folder `profile`, in
/// its own process group (so [`kill_group`] stops every process it starts).
pub fn spawn_chromium(
    profile: &Path,
    mode: &[String],
    url: &str,
    stdout: Stdio,
    stderr: Stdio,
) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt as _;
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--lang=en-US",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .args(mode)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .context("starting chromium")
}

/// Kills Chromium and whatever it left behind (renderer, zygote, GPU process), and reaps it.
pub fn kill_group(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// One headless Chromium run on `url` (`--dump-dom` or `--screenshot`,
/// which end by themselves) with its own fresh profile folder.
pub fn run_chromium(dir: &Path, url: &str, mode: &[String]) -> anyhow::Result<String> {
    let profile = tempfile::Builder::new()
        .prefix("chromium-profile-")
        .tempdir_in(dir)?;
    let mut mode = mode.to_vec();
    mode.push("--virtual-time-budget=8000".to_owned());
    let mut child = spawn_chromium(profile.path(), &mode, url, Stdio::piped(), Stdio::piped())?;
    // Read both pipes on threads so a chatty browser never blocks on them.
    let mut out_pipe = child.stdout.take().context("chromium stdout")?;
    let mut err_pipe = child.stderr.take().context("chromium stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out_pipe, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err_pipe, &mut s);
        s
    });
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    kill_group(&mut child);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        None => anyhow::bail!(
            "chromium did not finish {url} within {CHROMIUM_TIMEOUT:?}; its log:\n{stderr}"
        ),
        Some(s) if !s.success() => anyhow::bail!("chromium exited with {s} on {url}:\n{stderr}"),
        Some(_) => Ok(stdout),
    }
}

/// The page's DOM after its scripts ran.
pub fn dump_dom(dir: &Path, url: &str) -> anyhow::Result<String> {
    let dom = run_chromium(dir, url, &["--dump-dom".to_owned()])?;
    anyhow::ensure!(dom.contains("</html>"), "no DOM from {url}: {dom:?}");
    Ok(dom)
}

/// A screenshot of the page, decoded: (width, height, RGBA pixels).
pub fn screenshot(dir: &Path, url: &str, file: &Path) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    let _ = std::fs::remove_file(file);
    run_chromium(dir, url, &[format!("--screenshot={}", file.display())])?;
    anyhow::ensure!(file.is_file(), "chromium wrote no screenshot of {url}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file)?));
    let mut reader = decoder
        .read_info()
        .with_context(|| format!("{} is not a PNG", file.display()))?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG too large")?];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    anyhow::ensure!(
        info.bit_depth == png::BitDepth::Eight,
        "unexpected bit depth"
    );
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => anyhow::bail!("unexpected PNG colour type {other:?}"),
    };
    Ok((info.width, info.height, rgba))
}

/// Checks a screenshot is a real rendering: the window's size, many
/// colours (text is anti-aliased), not one flat background.
pub fn assert_rendered(name: &str, (w, h, rgba): &(u32, u32, Vec<u8>)) {
    assert_eq!((*w, *h), (WIDTH, HEIGHT), "{name}: screenshot size");
    let mut colours = std::collections::HashMap::<[u8; 3], usize>::new();
    for p in rgba.chunks_exact(4) {
        *colours.entry([p[0], p[1], p[2]]).or_default() += 1;
    }
    let background = colours.values().max().copied().unwrap_or_default();
    let total = (w * h) as usize;
    assert!(
        colours.len() >= 64,
        "{name}: only {} distinct colours: a blank or unstyled page",
        colours.len()
    );
    assert!(
        background * 100 < total * 97,
        "{name}: {}% of the pixels are one colour: the page is (nearly) blank",
        background * 100 / total
    );
}

/// Text (or an attribute's value) as Chromium serialises it.
pub fn in_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

/// The page's `<main>` element (the view shown), without the sign-in template beside it.
pub fn main_of(dom: &str) -> &str {
    let start = dom.find("<main").unwrap_or(0);
    let end = dom[start..]
        .find("</main>")
        .map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// Copies a screenshot to `EVSYNC_SCREENSHOTS` (a folder) when set, for a person to look at.
pub fn keep_screenshot(file: &Path) -> anyhow::Result<()> {
    if let Some(to) = std::env::var_os("EVSYNC_SCREENSHOTS") {
        let to = PathBuf::from(to);
        std::fs::create_dir_all(&to)?;
        std::fs::copy(file, to.join(file.file_name().context("file name")?))?;
    }
    Ok(())
}

/// How many pixels have exactly the colour `rgb`.
pub fn pixels_of(rgba: &[u8], rgb: [u8; 3]) -> usize {
    rgba.chunks_exact(4).filter(|p| p[..3] == rgb).count()
}
