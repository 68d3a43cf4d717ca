//! The reactors over real socket pairs: deliveries counted, pings
//! answered, closes seen.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_loadtest::lean::frame::{OP_CLOSE, OP_PING, OP_TEXT};
use herald_loadtest::lean::{Conn, Reactors};

use super::{frame, stamped, Tally};

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A welcomed connection over a real socket pair.
fn pair() -> (std::net::TcpStream, std::net::TcpStream, Conn) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nonblocking(true).unwrap();
    let mut conn = Conn::new();
    let welcome = frame(true, OP_TEXT, br#"{"type":"welcome"}"#, false);
    conn.on_bytes(&welcome, 1, &Tally::default(), &mut Vec::new())
        .unwrap();
    (client, server, conn)
}

#[test]
fn reactors_count_deliveries_answer_pings_and_see_closes() {
    let tally = Arc::new(Tally::default());
    let reactors = Reactors::start(2, 4, 1, tally.clone()).unwrap();
    let mut servers = Vec::new();
    for _ in 0..4 {
        let (client, server, conn) = pair();
        reactors.hand_over(client, conn);
        servers.push(server);
    }
    // A round to every connection, the first one split in two writes.
    let m = stamped(1, 0);
    servers[0].write_all(&m[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    servers[0].write_all(&m[10..]).unwrap();
    for s in &mut servers[1..] {
        s.write_all(&m).unwrap();
    }
    wait_for("4 deliveries", || {
        tally.delivered.lock().unwrap().len() == 4
    });

    // A ping is answered with a masked pong carrying its payload.
    servers[1]
        .write_all(&frame(true, OP_PING, b"hi", false))
        .unwrap();
    let mut pong = [0u8; 8];
    servers[1]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    servers[1].read_exact(&mut pong).unwrap();
    assert_eq!(&pong[..2], &[0x8a, 0x82]);
    assert_eq!([pong[6] ^ pong[2], pong[7] ^ pong[3]], *b"hi");

    // A close frame is answered and ends the connection; so does EOF.
    servers[2]
        .write_all(&frame(true, OP_CLOSE, &1000u16.to_be_bytes(), false))
        .unwrap();
    let mut close = [0u8; 8];
    servers[2]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    servers[2].read_exact(&mut close).unwrap();
    assert_eq!(&close[..2], &[0x88, 0x82]);
    servers[3].shutdown(std::net::Shutdown::Both).unwrap();
    wait_for("2 closes", || *tally.closed.lock().unwrap() == 2);
    assert_eq!(*tally.duplicates.lock().unwrap(), 0);
    drop(reactors);
}
