//! `amqp-rpc decode --html` in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `scripts/chromium.sh`) loads each report from a file, runs its script, and we read the DOM it
//! leaves (`--dump-dom`) and everything the page wrote to the console.
//!
//! The page's script reports on itself in `#status`: `data-state="ok"` once it has drawn everything,
//! with the number of arrows it drew for method frames and of call rows. Those must be what the
//! capture holds: one arrow per method frame (`decode --json`), one row per call (`decode --rpc
//! --json`). Any console message at all fails (a script error, a blocked fetch: the page's CSP
//! allows no network).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amqp_rpc::decode::{decode_slice, DecodeArgs};

/// A browser run that takes longer than this has hung: it is killed and the test fails.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("headless Chromium is not installed: run `bash scripts/chromium.sh` (scripts/test.sh does)")
    })
}

/// A directory of our own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "amqp-rpc-html-{tag}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the browser made of a page: the DOM after its scripts ran, and its console messages.
struct Rendered {
    dom: String,
    console: Vec<String>,
}

/// Load `html` in headless Chromium (from a file, as a user opens the report).
fn render(tag: &str, html: &str) -> Rendered {
    let dir = TempDir::new(tag);
    let page = dir.0.join("report.html");
    std::fs::write(&page, html).unwrap();
    let profile = dir.0.join("profile");
    let (out_path, err_path) = (dir.0.join("dom.html"), dir.0.join("stderr.txt"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{tag}: chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    // Chromium logs every console message (log, warn, error, uncaught exception, CSP violation)
    // as `INFO:CONSOLE…] "message", source: …`.
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    assert!(!dom.is_empty(), "{tag}: no DOM; chromium said:\n{stderr}");
    Rendered { dom, console }
}

/// The attributes of the page's `<output id="status" …>`.
fn status(dom: &str) -> std::collections::HashMap<String, String> {
    let start = dom
        .find("<output id=\"status\"")
        .unwrap_or_else(|| panic!("no #status in\n{dom}"));
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let mut attrs = std::collections::HashMap::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].rsplit(' ').next().unwrap().to_string();
        let value_start = eq + 2;
        let value_end = value_start + rest[value_start..].find('"').unwrap();
        attrs.insert(name, rest[value_start..value_end].to_string());
        rest = &rest[value_end + 1..];
    }
    attrs
}

fn args() -> DecodeArgs {
    let mut args = DecodeArgs::new(None);
    args.html = Some(PathBuf::from("unused.html"));
    args
}

/// Method frames and RPC calls in an input, by our other views.
fn expected(bytes: &[u8], raw: bool) -> (usize, usize) {
    let mut a = DecodeArgs::new(None);
    a.raw = raw;
    a.json = true;
    let (frames, _) = decode_slice(bytes, &a);
    let methods = frames
        .lines()
        .filter(|l| l.contains("\"type\":\"method\""))
        .count();
    a.rpc = true;
    let (calls, _) = decode_slice(bytes, &a);
    (methods, calls.lines().count())
}

fn check_page(tag: &str, bytes: &[u8], raw: bool) -> Rendered {
    let mut a = args();
    a.raw = raw;
    let (html, result) = decode_slice(bytes, &a);
    result.unwrap_or_else(|e| panic!("{tag}: {e}"));
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{tag}: not a page: {}",
        &html[..html.len().min(200)]
    );
    // Self-contained: outside its data (where the capture's strings may name any URL), nothing
    // that could fetch from anywhere; the page's CSP forbids it too.
    let data_start = html
        .find("<script type=\"application/json\" id=\"data\">")
        .unwrap();
    let data_end = data_start + html[data_start..].find("</script>").unwrap();
    let markup = format!("{}{}", &html[..data_start], &html[data_end..])
        .replace("http://www.w3.org/2000/svg", "");
    for needle in [
        "http://", "https://", "src=\"", "href=\"", "url(http", "@import",
    ] {
        assert!(
            !markup.contains(needle),
            "{tag}: the page refers to something outside itself ({needle})"
        );
    }
    assert!(markup.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    let page = render(tag, &html);
    let s = status(&page.dom);
    assert_eq!(
        s.get("data-state").map(String::as_str),
        Some("ok"),
        "{tag}: {s:?}"
    );
    let (methods, calls) = expected(bytes, raw);
    assert_eq!(
        s["data-method-arrows"],
        methods.to_string(),
        "{tag}: one arrow per method frame"
    );
    assert_eq!(
        s["data-calls"],
        calls.to_string(),
        "{tag}: one row per call"
    );
    assert!(
        page.console.is_empty(),
        "{tag}: console messages:\n{}",
        page.console.join("\n")
    );
    page
}

#[test]
fn every_rpc_fixture_renders_one_arrow_per_method_frame_and_one_row_per_call() {
    for name in [
        "tutorial6",
        "rpc_error",
        "rpc_returned",
        "rpc_direct",
        "rpc_redelivered",
        "rpc_inflight",
        "methods",
        "badlogin",
    ] {
        let bytes = std::fs::read(root().join(format!("fixtures/captures/{name}.pcapng"))).unwrap();
        let page = check_page(name, &bytes, false);
        match name {
            // The error reply's arrow and call are in colour; so are the return and 404 close.
            "rpc_error" => {
                assert!(page.dom.contains("class=\"arrow error\""), "{name}");
                assert!(page.dom.contains("outcome-error"), "{name}");
            }
            "rpc_returned" => assert!(page.dom.contains("class=\"arrow return\""), "{name}"),
            "methods" => {
                assert!(page.dom.contains("class=\"arrow return\""), "{name}");
                assert!(page.dom.contains("class=\"arrow error\""), "{name}");
            }
            _ => {}
        }
    }
}

/// Damaged input: malformed frames get arrows of their own, method frames still one each.
#[test]
fn malformed_frames_are_drawn_apart_from_method_frames() {
    let mut bytes = std::fs::read(root().join("fixtures/captures/methods.client.bin")).unwrap();
    let size = u32::from_be_bytes(bytes[11..15].try_into().unwrap()) as usize;
    bytes[8 + 7 + size] = 0x00;
    let page = check_page("damaged", &bytes, true);
    let s = status(&page.dom);
    let (all, methods): (usize, usize) = (
        s["data-arrows"].parse().unwrap(),
        s["data-method-arrows"].parse().unwrap(),
    );
    assert!(all > methods, "{s:?}");
    assert!(page.dom.contains("class=\"arrow malformed\""));
}

/// Strings from the wire are text in the page, never markup: a queue name and a body that try to
/// close the data's script element and run their own.
#[test]
fn wire_strings_cannot_inject_markup_or_script() {
    use amqp_codec::{encode_message, BasicProperties, BasicPublish};

    let attack = "</script><script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">";
    let mut wire = bytes::BytesMut::from(&b"AMQP\x00\x00\x09\x01"[..]);
    let publish = BasicPublish {
        routing_key: attack.into(),
        ..Default::default()
    };
    let props = BasicProperties {
        correlation_id: Some(attack.into()),
        reply_to: Some("amq.gen-<b>x</b>".into()),
        ..Default::default()
    };
    encode_message(
        &mut wire,
        1,
        &publish.into(),
        &props,
        attack.as_bytes(),
        131_072,
    )
    .unwrap();
    let page = check_page("hostile", &wire, true);
    assert!(!page.dom.contains("pwned</title>"), "the title was changed");
    assert!(page
        .dom
        .contains("<title>amqp-rpc decode: standard input</title>"));
    assert!(
        !page.dom.contains("<img src=\"x\""),
        "an element was injected"
    );
    assert!(
        page.dom.contains("&lt;/script&gt;&lt;script&gt;"),
        "the attack shows as text"
    );
}

/// The command writes the report to the file named, prints nothing, exits 0.
#[test]
fn the_command_writes_the_report_file() {
    let dir = TempDir::new("cli");
    let out = dir.0.join("report.html");
    let o = Command::new(env!("CARGO_BIN_EXE_amqp-rpc"))
        .args(["decode", "fixtures/captures/tutorial6.pcapng", "--html"])
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty());
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<title>amqp-rpc decode: tutorial6.pcapng</title>"));
    let o = Command::new(env!("CARGO_BIN_EXE_amqp-rpc"))
        .args(["decode", "fixtures/captures/tutorial6.pcapng", "--html"])
        .arg(dir.0.join("no/such/dir/report.html"))
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let _ = std::io::stderr().flush();
}
