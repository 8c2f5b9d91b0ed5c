use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::*;
use crate::server::input::Sink;
use mqtt_broker_core::ConnectionInfo;

/// A reactor with one connection: the client's end, the reactor's remote for it, and the
/// broker task's input channel.
struct Rig {
    client: TcpStream,
    remote: Remote,
    conn: ConnectionId,
    inputs: mpsc::Receiver<Input>,
    reactors: Reactors,
}

async fn rig(channel: usize, cap: usize) -> Rig {
    let (sender, mut inputs) = mpsc::channel(channel);
    let reactors = Reactors::start(1, &sender, cap).unwrap();
    let conn = ConnectionId(7);
    let (client, remote) = connect(&reactors, &mut inputs, conn).await;
    Rig {
        client,
        remote,
        conn,
        inputs,
        reactors,
    }
}

/// Opens a connection `conn` on `reactors`: the client's end and the remote from its `Open`.
async fn connect(
    reactors: &Reactors,
    inputs: &mut mpsc::Receiver<Input>,
    conn: ConnectionId,
) -> (TcpStream, Remote) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    reactors.open(Accepted {
        conn,
        info: Box::new(ConnectionInfo::new(Some(peer))),
        stream: mio::net::TcpStream::from_std(server.into_std().unwrap()),
        slot: None,
    });
    match next(inputs).await {
        Some(Input::Open {
            conn: opened,
            sink: Sink::Reactor(remote),
            ..
        }) if opened == conn => (client, remote),
        other => panic!("expected the Open of a reactor connection, got {other:?}"),
    }
}

/// The next input, within five seconds.
async fn next(inputs: &mut mpsc::Receiver<Input>) -> Option<Input> {
    tokio::time::timeout(Duration::from_secs(5), inputs.recv())
        .await
        .ok()
        .flatten()
}

/// Receives `Bytes` inputs until `want` bytes have come, dropping each credit (which hands it
/// back, as the broker task does once it handled the read) unless there is a `keep`.
async fn receive(
    inputs: &mut mpsc::Receiver<Input>,
    want: usize,
    mut keep: Option<&mut Vec<Credit>>,
) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        match next(inputs).await {
            Some(Input::Bytes { data, credit, .. }) => {
                got.extend_from_slice(&data);
                if let Some(keep) = keep.as_mut() {
                    keep.push(credit);
                }
            }
            Some(Input::Flushed { .. }) => {}
            other => panic!("expected bytes, got {other:?} after {} bytes", got.len()),
        }
    }
    got
}

#[tokio::test]
async fn input_larger_than_the_credit_arrives_whole_as_the_credit_comes_back() {
    let mut rig = rig(64, 1 << 20).await;
    let sent: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let mut client = rig.client;
    let writer = tokio::spawn({
        let sent = sent.clone();
        async move {
            client.write_all(&sent).await.unwrap();
            client
        }
    });
    // Held, the first reads use up the credit and the reactor stops...
    let mut held = Vec::new();
    let first = receive(&mut rig.inputs, INPUT_CREDIT, Some(&mut held)).await;
    assert_eq!(
        first.len(),
        INPUT_CREDIT,
        "no more than the credit is handed over"
    );
    let early = tokio::time::timeout(Duration::from_millis(100), rig.inputs.recv()).await;
    assert!(
        early.is_err(),
        "nothing more while the credit is held: {early:?}"
    );
    // ...and dropped, they let the rest come.
    drop(held);
    let rest = receive(&mut rig.inputs, sent.len() - first.len(), None).await;
    assert_eq!([first, rest].concat(), sent);
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn a_paused_connection_is_not_read_until_resumed() {
    let mut rig = rig(64, 1 << 20).await;
    rig.remote.pause(rig.conn, true);
    tokio::time::sleep(Duration::from_millis(50)).await; // the reactor has taken the order
    rig.client.write_all(b"held back").await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(100), rig.inputs.recv()).await;
    assert!(early.is_err(), "a paused connection is not read: {early:?}");
    rig.remote.pause(rig.conn, false);
    let got = receive(&mut rig.inputs, 9, None).await;
    assert_eq!(got, b"held back");
}

#[tokio::test]
async fn a_close_writes_what_is_queued_then_ends_the_stream() {
    let mut rig = rig(64, 1 << 20).await;
    let chunks = vec![Bytes::from_static(b"last "), Bytes::from_static(b"words")];
    rig.remote.write(rig.conn, chunks);
    rig.remote.close(rig.conn);
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), rig.client.read_to_end(&mut got));
    read.await.expect("the stream ends").unwrap();
    assert_eq!(got, b"last words");
    let mut flushed = 0;
    loop {
        match next(&mut rig.inputs).await {
            Some(Input::Flushed { bytes, .. }) => flushed += bytes,
            Some(Input::Closed { conn }) if conn == rig.conn => break,
            other => panic!("expected Flushed then Closed, got {other:?}"),
        }
    }
    assert_eq!(flushed, 10, "every byte written is reported");
}

#[tokio::test]
async fn bytes_over_the_cap_close_the_connection() {
    let mut rig = rig(64, 8).await;
    rig.remote
        .write(rig.conn, vec![Bytes::from_static(b"0123456789")]);
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), rig.client.read_to_end(&mut got));
    read.await.expect("the stream ends").unwrap();
    assert!(got.is_empty(), "nothing over the cap is written: {got:?}");
    assert!(matches!(
        next(&mut rig.inputs).await,
        Some(Input::Closed { .. })
    ));
}

#[tokio::test]
async fn inputs_wait_in_order_for_room_in_a_full_channel() {
    let mut rig = rig(1, 1 << 20).await;
    // The channel holds one input: the rest wait in the reactor, in order.
    for part in [&b"one "[..], b"two ", b"three"] {
        rig.client.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let got = receive(&mut rig.inputs, 13, None).await;
    assert_eq!(got, b"one two three");
}

#[tokio::test]
async fn a_client_that_leaves_is_reported_closed_and_the_reactor_ends_on_stop() {
    let mut rig = rig(64, 1 << 20).await;
    drop(rig.client);
    assert!(matches!(
        next(&mut rig.inputs).await,
        Some(Input::Closed { conn }) if conn == rig.conn
    ));
    rig.reactors.stop();
    let sender_gone = tokio::time::timeout(Duration::from_secs(5), rig.inputs.recv()).await;
    assert!(
        matches!(sender_gone, Ok(None)),
        "the reactor ends and lets go of the channel"
    );
}

/// Credit handed back to one of two starved connections used to clear the reactor's one "wake
/// me" flag, so the other's credit, handed back later, woke nobody and that upload stalled.
#[tokio::test]
async fn credit_handed_back_to_each_of_two_starved_connections_wakes_the_reactor() {
    let mut rig = rig(64, 1 << 20).await;
    let other = ConnectionId(8);
    let (mut second, _remote) = connect(&rig.reactors, &mut rig.inputs, other).await;
    // The first has a little more than its credit, the second much more.
    rig.client
        .write_all(&vec![0x5a_u8; INPUT_CREDIT + 100])
        .await
        .unwrap();
    second
        .write_all(&vec![0xa5_u8; 3 * INPUT_CREDIT])
        .await
        .unwrap();
    // Both use up their credit; the broker task holds every read.
    let mut held: Vec<(ConnectionId, Credit)> = Vec::new();
    let mut got = [0usize; 2];
    while got != [INPUT_CREDIT, INPUT_CREDIT] {
        match next(&mut rig.inputs).await {
            Some(Input::Bytes { conn, data, credit }) => {
                got[usize::from(conn == other)] += data.len();
                held.push((conn, credit));
            }
            other => panic!("expected bytes, got {other:?} with {got:?}"),
        }
    }
    // The first one's credit comes back: its last 100 bytes are read, and it waits no more...
    let (first, second_held): (Vec<_>, Vec<_>) =
        held.into_iter().partition(|(c, _)| *c == rig.conn);
    drop(first);
    match next(&mut rig.inputs).await {
        Some(Input::Bytes { conn, data, .. }) if conn == rig.conn => {
            assert_eq!(data.len(), 100);
        }
        other => panic!("expected the rest of the first connection, got {other:?}"),
    }
    tokio::task::yield_now().await;
    // ...then the other's: it is read again too.
    drop(second_held);
    loop {
        match next(&mut rig.inputs).await {
            Some(Input::Bytes { conn, .. }) if conn == other => break,
            Some(Input::Bytes { .. }) => {}
            none_or_other => panic!("the second connection stalled: {none_or_other:?}"),
        }
    }
}

/// A packet and the end of the stream that arrive together (one event) are both seen: the
/// bytes go to the broker task and the connection is reported closed at once.
#[tokio::test]
async fn the_end_of_the_stream_right_after_a_packet_is_seen() {
    let mut rig = rig(64, 1 << 20).await;
    // Written and shut down before the reactor runs again (this runtime has one thread).
    rig.client.write_all(b"last packet").await.unwrap();
    rig.client.shutdown().await.unwrap();
    let got = receive(&mut rig.inputs, 11, None).await;
    assert_eq!(got, b"last packet");
    match next(&mut rig.inputs).await {
        Some(Input::Closed { conn }) if conn == rig.conn => {}
        other => panic!("expected Closed at once, got {other:?}"),
    }
}

#[tokio::test]
async fn a_connection_handed_to_an_ended_reactor_is_closed_not_kept() {
    let (sender, mut inputs) = mpsc::channel(8);
    let reactors = Reactors::start(1, &sender, 1024).unwrap();
    drop(sender);
    reactors.stop();
    let ended = tokio::time::timeout(Duration::from_secs(5), inputs.recv()).await;
    assert!(matches!(ended, Ok(None)), "the reactor ended: {ended:?}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    reactors.open(Accepted {
        conn: ConnectionId(9),
        info: Box::new(ConnectionInfo::new(Some(peer))),
        stream: mio::net::TcpStream::from_std(server.into_std().unwrap()),
        slot: None,
    });
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the client sees the end of the stream: {read:?}"
    );
}
