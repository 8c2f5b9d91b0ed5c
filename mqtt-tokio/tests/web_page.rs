//! The web page in a real browser: Debian's chromium, headless, driven through its
//! chromedriver by fantoccini (WebDriver). The page logs in against the password file, shows a
//! retained message published with `mosquitto_pub` in its topic tree, receives live messages
//! on a pattern with a wildcard inside a level, publishes a message `mosquitto_sub` receives,
//! refuses a wrong password, hides from an ACL-limited user what the ACL hides, and shows a
//! payload holding `<script>` as text. A screenshot of each step lands in the test's scratch
//! directory (`target/tmp/the_page_in_a_real_browser-*/`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Subscriber, TestServer, have, have_clients, publish_ok, run, scratch_dir};
use fantoccini::{Client, ClientBuilder, Locator};
use mqtt_tokio::config::parse_toml;

const ADMIN: [&str; 4] = ["-u", "admin", "-P", "admin-secret"];
const WAIT: Duration = Duration::from_secs(15);

/// A chromedriver on a free port, killed when dropped.
struct Driver(std::process::Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver(child, port)
}

async fn browser(driver: &Driver) -> Client {
    // fantoccini's client speaks plain HTTP to chromedriver; its TLS stack wants a provider.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), "chrome".into());
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }),
    );
    ClientBuilder::rustls()
        .expect("TLS roots")
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a browser session")
}

/// Saves a screenshot of the page as `name`.png in `dir`.
async fn shot(client: &Client, dir: &std::path::Path, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("save screenshot");
}

async fn fill(client: &Client, id: &str, text: &str) {
    let field = client.find(Locator::Id(id)).await.expect(id);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// The text of the element `css` names, once there (shown or inside a closed branch).
async fn text_of(client: &Client, css: &str) -> String {
    let query = format!("document.querySelector({css:?})");
    until(client, &format!("{query} !== null")).await;
    let text = client
        .execute(&format!("return {query}.textContent;"), vec![])
        .await
        .expect("script");
    text.as_str().unwrap_or_default().to_owned()
}

/// Waits until `script` (a JavaScript expression) is true in the page.
async fn until(client: &Client, script: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let value = client
            .execute(&format!("return !!({script});"), vec![])
            .await
            .expect("script");
        if value == serde_json::Value::Bool(true) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never true: {script}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn log_in(client: &Client, user: &str, password: &str) {
    until(client, "!document.getElementById('login').hidden").await;
    fill(client, "login-user", user).await;
    fill(client, "login-password", password).await;
    client
        .find(Locator::Id("login-submit"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("click");
}

#[test]
fn the_page_in_a_real_browser() {
    let test = "the_page_in_a_real_browser";
    if !have("chromedriver", test) || !have_clients(test) || !have("mosquitto_passwd", test) {
        return;
    }
    let dir = scratch_dir(test);
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "").expect("passwd");
    for (user, password) in [("admin", "admin-secret"), ("viewer", "viewer-secret")] {
        let made = run(Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&passwd)
            .args([user, password]));
        assert!(made.status.success(), "{made:?}");
    }
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user admin\ntopic readwrite #\ntopic read $SYS/#\n\nuser viewer\ntopic read public/#\n",
    )
    .expect("acl");
    let server = TestServer::start(
        parse_toml(&format!(
            "password_file = {:?}\nacl_file = {:?}\n\
             [[listener]]\nport = 0\n\
             [[listener]]\nport = 0\nprotocol = \"http\"\n",
            passwd.display().to_string(),
            acl.display().to_string()
        ))
        .expect("test setup"),
    );
    let (mqtt, http) = (server.port(0), server.port(1));
    let retained = |topic: &str, payload: &str| {
        publish_ok(
            mqtt,
            &[&ADMIN[..], &["-r", "-q", "1", "-t", topic, "-m", payload]].concat(),
        );
    };
    retained("tele/plug/LWT", "Online");
    retained("tele/plug/STATE", "{\"POWER\":\"ON\"}");
    retained("public/info", "hello");
    retained(
        "tele/evil",
        "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">",
    );
    let shots = dir.join("screenshots");
    std::fs::create_dir_all(&shots).expect("dir");
    let driver = start_driver();
    let page = format!("http://127.0.0.1:{http}/");
    server.block_on(async {
        let client = browser(&driver).await;
        client.goto(&page).await.expect("the page loads");
        // A wrong password is refused.
        log_in(&client, "admin", "not-the-password").await;
        until(
            &client,
            "document.getElementById('login-error').textContent !== ''",
        )
        .await;
        let error = text_of(&client, "#login-error").await;
        assert!(error.contains("wrong user name or password"), "{error}");
        shot(&client, &shots, "1-wrong-password").await;

        // The retained message published with mosquitto_pub is in the topic tree.
        log_in(&client, "admin", "admin-secret").await;
        let lwt = text_of(&client, "[data-topic='tele/plug/LWT']").await;
        assert!(lwt.contains("Online"), "{lwt}");
        shot(&client, &shots, "2-topic-tree").await;

        // A payload holding markup is text: nothing of it runs or renders as an element.
        let evil = text_of(&client, "[data-topic='tele/evil']").await;
        assert!(evil.contains("<script>"), "{evil}");
        let safe = client
            .execute(
                "return window.pwned === undefined && \
                 document.querySelectorAll('#tree script, #tree img').length === 0;",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(
            safe,
            serde_json::Value::Bool(true),
            "markup in a payload was run or rendered"
        );
        client
            .find(Locator::Css("[data-topic='tele/evil']"))
            .await
            .expect("leaf")
            .click()
            .await
            .expect("click");
        until(
            &client,
            "document.getElementById('detail-payload').textContent.includes('<script>')",
        )
        .await;
        shot(&client, &shots, "3-payload-as-text").await;

        // A numeric field of a JSON payload, plotted from the history the broker keeps.
        retained("tele/plug/SENSOR", "{\"ENERGY\":{\"Power\":12}}");
        let _ = text_of(&client, "[data-topic='tele/plug/SENSOR']").await;
        client
            .execute(
                "document.querySelector(\"[data-topic='tele/plug/SENSOR']\").click();",
                vec![],
            )
            .await
            .expect("select");
        until(
            &client,
            "document.querySelector(\"#fields button[data-field='ENERGY.Power']\") !== null",
        )
        .await;
        client
            .find(Locator::Css("#fields button[data-field='ENERGY.Power']"))
            .await
            .expect("plot button")
            .click()
            .await
            .expect("click");
        until(
            &client,
            "document.getElementById('history-status').textContent.includes('ENERGY.Power')",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1100)).await; // the next second's point
        publish_ok(
            mqtt,
            &[
                &ADMIN[..],
                &[
                    "-t",
                    "tele/plug/SENSOR",
                    "-m",
                    "{\"ENERGY\":{\"Power\":15}}",
                ],
            ]
            .concat(),
        );
        until(
            &client,
            "document.getElementById('history-status').textContent.endsWith('last 15')",
        )
        .await;
        shot(&client, &shots, "4-field-history").await;

        // Live messages on a pattern with a wildcard inside a level.
        client
            .find(Locator::Css("nav button[data-tab='live']"))
            .await
            .expect("tab")
            .click()
            .await
            .expect("click");
        fill(&client, "live-filter", "stat/Sonoff*/POWER").await;
        client
            .find(Locator::Css("#live-form button[type='submit']"))
            .await
            .expect("watch")
            .click()
            .await
            .expect("click");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            publish_ok(
                mqtt,
                &[&ADMIN[..], &["-t", "stat/Shelly-1/POWER", "-m", "ON"]].concat(),
            );
            publish_ok(
                mqtt,
                &[&ADMIN[..], &["-t", "stat/Sonoff-Hall/POWER", "-m", "OFF"]].concat(),
            );
            let seen = client
                .execute(
                    "return document.getElementById('live-list').textContent;",
                    vec![],
                )
                .await
                .expect("script");
            let seen = seen.as_str().unwrap_or_default().to_owned();
            if seen.contains("stat/Sonoff-Hall/POWER OFF") {
                assert!(
                    !seen.contains("Shelly"),
                    "the pattern let another device through: {seen}"
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no live message: {seen}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        shot(&client, &shots, "5-live").await;

        // Publishing from the page reaches a mosquitto_sub subscriber.
        let subscriber = tokio::task::spawn_blocking(move || {
            Subscriber::start(
                mqtt,
                &[&ADMIN[..], &["-t", "cmnd/#"]].concat(),
                "cmnd/probe",
                &ADMIN,
            )
        })
        .await
        .expect("subscriber");
        client
            .find(Locator::Css("nav button[data-tab='publish']"))
            .await
            .expect("tab")
            .click()
            .await
            .expect("click");
        fill(&client, "pub-topic", "cmnd/plug/POWER").await;
        fill(&client, "pub-payload", "TOGGLE").await;
        client
            .find(Locator::Id("pub-send"))
            .await
            .expect("send")
            .click()
            .await
            .expect("click");
        until(
            &client,
            "document.getElementById('pub-result').textContent === 'published'",
        )
        .await;
        let lines = tokio::task::spawn_blocking(move || subscriber.expect_lines(1))
            .await
            .expect("lines");
        assert_eq!(lines, ["cmnd/plug/POWER TOGGLE"]);
        shot(&client, &shots, "6-published").await;

        // An ACL-limited user sees only what the ACL lets it read, and no clients.
        client
            .find(Locator::Id("logout"))
            .await
            .expect("logout")
            .click()
            .await
            .expect("click");
        log_in(&client, "viewer", "viewer-secret").await;
        let info = text_of(&client, "[data-topic='public/info']").await;
        assert!(info.contains("hello"), "{info}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let hidden = client
            .execute(
                "return document.querySelector(\"[data-topic='tele/plug/LWT']\") === null \
                 && document.getElementById('clients-tab').hidden;",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(
            hidden,
            serde_json::Value::Bool(true),
            "the viewer saw what its ACL hides"
        );
        shot(&client, &shots, "7-acl-limited").await;
        client.close().await.expect("close");
    });
}
