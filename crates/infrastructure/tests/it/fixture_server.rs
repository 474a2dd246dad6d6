//! The fixture server on its own: script order, recording, keep-alive, chunked framing.

use exllm_infrastructure::testing::{FixtureServer, Scripted};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads from `socket` until `needle` has arrived, returning everything read.
async fn read_until(socket: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0_u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}; got {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn replies_in_order_on_one_keep_alive_connection_and_repeats_the_last() {
    let server = FixtureServer::start(vec![
        Scripted::json(200, "{\"n\":1}"),
        Scripted::new(429)
            .header("retry-after", "1")
            .body("slow down"),
        Scripted::new(200).chunks(vec!["ab", "", "cd"]).delay(1),
    ])
    .await;
    let mut socket = TcpStream::connect(server.addr()).await.unwrap();
    socket
        .write_all(
            b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello",
        )
        .await
        .unwrap();
    let first = read_until(&mut socket, "{\"n\":1}").await;
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.contains("content-type: application/json\r\n"));
    assert!(first.contains("content-length: 7\r\n"));

    socket
        .write_all(b"POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        .await
        .unwrap();
    let second = read_until(&mut socket, "slow down").await;
    assert!(
        second.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{second}"
    );
    assert!(second.contains("retry-after: 1\r\n"));

    socket
        .write_all(b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let third = read_until(&mut socket, "0\r\n\r\n").await;
    assert!(third.contains("transfer-encoding: chunked\r\n"));
    assert!(
        third.ends_with("2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"),
        "{third:?}"
    );

    socket
        .write_all(b"GET /four HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let fourth = read_until(&mut socket, "0\r\n\r\n").await;
    assert!(
        fourth.ends_with("2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"),
        "the last reply repeats"
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/one")
    );
    assert_eq!(requests[0].body, b"hello");
    assert_eq!(requests[0].header("x-test"), Some("yes"));
    assert_eq!(requests[1].body_text(), "abcde");
    assert_eq!(
        (requests[2].method.as_str(), requests[2].path.as_str()),
        ("GET", "/three")
    );
    assert!(requests[2].body.is_empty());
}

#[tokio::test]
async fn a_reset_reply_ends_without_a_terminator_and_an_empty_script_answers_500() {
    let server = FixtureServer::start(vec![Scripted::reset_after(vec!["data: a\n\n"])]).await;
    let mut socket = TcpStream::connect(server.addr()).await.unwrap();
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0_u8; 1024];
    // Read until the connection ends, by FIN or RST.
    while let Ok(n) = socket.read(&mut buf).await {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("9\r\ndata: a\n\n\r\n"), "{text:?}");
    assert!(!text.contains("0\r\n\r\n"));

    let server = FixtureServer::start(Vec::new()).await;
    let mut socket = TcpStream::connect(server.addr()).await.unwrap();
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until(&mut socket, "no script")
            .await
            .starts_with("HTTP/1.1 500")
    );
}
