//! The lean connections' reactors: one thread per core, each a mio `Poll`
//! over its share of the sockets, reading every readable socket into one
//! scratch buffer per thread. A held connection is a slot of a vector: its
//! socket (a file descriptor) and its [`Conn`] — no task, no buffer.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::conn::{Conn, Sink};

/// The scratch buffer every socket of a thread is read into.
const SCRATCH: usize = 64 << 10;
/// Reads of one socket per wake-up before the others get their turn.
const READS_PER_TURN: usize = 16;
const WAKER: Token = Token(usize::MAX);

/// A socket handed over after its `welcome`, with its state.
type Handover = (std::net::TcpStream, Conn);

struct Lane {
    tx: Option<Sender<Handover>>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// The reactor threads of one worker process. Dropping it stops them and
/// closes their sockets.
pub struct Reactors {
    lanes: Vec<Lane>,
    next: AtomicUsize,
}

impl Reactors {
    /// Starts `threads` reactors for about `expected` connections in all.
    /// Deliveries of run `run` and ended connections go to `sink`.
    pub fn start(
        threads: usize,
        expected: usize,
        run: u32,
        sink: Arc<dyn Sink>,
    ) -> io::Result<Self> {
        let threads = threads.max(1);
        let mut lanes = Vec::with_capacity(threads);
        for i in 0..threads {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = mpsc::channel();
            let mut reactor = Reactor {
                poll,
                slots: Vec::with_capacity(expected.div_ceil(threads)),
                free: Vec::new(),
                scratch: vec![0; SCRATCH].into_boxed_slice(),
                out: Vec::with_capacity(256),
                again: Vec::new(),
                run,
                sink: sink.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("lean-reactor-{i}"))
                .spawn(move || reactor.run(rx))?;
            lanes.push(Lane {
                tx: Some(tx),
                waker,
                thread: Some(thread),
            });
        }
        Ok(Reactors {
            lanes,
            next: AtomicUsize::new(0),
        })
    }

    /// [`Reactors::start`] with one thread per core.
    pub fn per_core(expected: usize, run: u32, sink: Arc<dyn Sink>) -> io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::start(threads, expected, run, sink)
    }

    /// Hands a welcomed connection to one of the reactors (in turn).
    pub fn hand_over(&self, stream: std::net::TcpStream, conn: Conn) {
        let lane = &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()];
        let sent = lane
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send((stream, conn)).is_ok());
        if sent {
            if let Err(e) = lane.waker.wake() {
                tracing::warn!("waking a reactor: {e}");
            }
        }
    }
}

impl Drop for Reactors {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            drop(lane.tx.take());
            let _ = lane.waker.wake();
        }
        for lane in &mut self.lanes {
            if let Some(t) = lane.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A held connection.
struct Slot {
    stream: TcpStream,
    conn: Conn,
    /// Bytes the socket would not take yet (a pong or close answer behind a
    /// full send buffer): there only while something waits.
    pending: Option<Box<[u8]>>,
}

struct Reactor {
    poll: Poll,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    scratch: Box<[u8]>,
    /// Frames to send, built while parsing one read.
    out: Vec<u8>,
    /// Sockets that used their reads of the last turn (more may wait:
    /// the edge-triggered poll will not say so again).
    again: Vec<usize>,
    run: u32,
    sink: Arc<dyn Sink>,
}

impl Reactor {
    fn run(&mut self, rx: Receiver<Handover>) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = (!self.again.is_empty()).then_some(Duration::ZERO);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("reactor poll failed: {e}");
                return;
            }
            let again = std::mem::take(&mut self.again);
            for ev in events.iter() {
                if ev.token() == WAKER {
                    loop {
                        match rx.try_recv() {
                            Ok((stream, conn)) => self.add(stream, conn),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return,
                        }
                    }
                    continue;
                }
                let idx = ev.token().0;
                if ev.is_writable() && !self.flush(idx) {
                    self.remove(idx);
                    continue;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read(idx);
                }
            }
            for idx in again {
                self.read(idx);
            }
        }
    }

    fn add(&mut self, stream: std::net::TcpStream, conn: Conn) {
        if conn.closing() {
            // Closed right after its welcome, before the hand-over.
            self.sink.closed();
            return;
        }
        let mut stream = TcpStream::from_std(stream);
        let idx = self.free.pop().unwrap_or(self.slots.len());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(idx), Interest::READABLE)
        {
            tracing::warn!("registering a connection: {e}");
            self.free.push(idx);
            self.sink.closed();
            return;
        }
        let slot = Some(Slot {
            stream,
            conn,
            pending: None,
        });
        if idx == self.slots.len() {
            self.slots.push(slot);
        } else {
            self.slots[idx] = slot;
        }
        // Whatever arrived between the welcome and the registration.
        self.read(idx);
    }

    fn read(&mut self, idx: usize) {
        for _ in 0..READS_PER_TURN {
            let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
                return;
            };
            match slot.stream.read(&mut self.scratch) {
                Ok(0) => return self.remove(idx),
                Ok(n) => {
                    self.out.clear();
                    let parsed = slot.conn.on_bytes(
                        &self.scratch[..n],
                        self.run,
                        &*self.sink,
                        &mut self.out,
                    );
                    let sent = self.out.is_empty()
                        || send(slot, &self.out, self.poll.registry(), Token(idx)).is_ok();
                    if let Err(e) = &parsed {
                        tracing::debug!("connection given up: {e}");
                    }
                    if parsed.is_err() || !sent || slot.conn.closing() {
                        return self.remove(idx);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.remove(idx),
            }
        }
        self.again.push(idx);
    }

    /// Writes what waits on connection `idx`; false if the socket failed.
    fn flush(&mut self, idx: usize) -> bool {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return true;
        };
        let Some(pending) = slot.pending.as_mut() else {
            return true;
        };
        match write_some(&mut slot.stream, pending) {
            Ok(n) if n < pending.len() => {
                *pending = pending[n..].into();
                return true;
            }
            Ok(_) => {}
            Err(_) => return false,
        }
        slot.pending = None;
        self.poll
            .registry()
            .reregister(&mut slot.stream, Token(idx), Interest::READABLE)
            .is_ok()
    }

    fn remove(&mut self, idx: usize) {
        if let Some(mut slot) = self.slots.get_mut(idx).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut slot.stream);
            self.free.push(idx);
            self.sink.closed();
        }
    }
}

/// Writes as much of `buf` as the socket takes now.
fn write_some(stream: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut off = 0;
    while off < buf.len() {
        match stream.write(&buf[off..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(off)
}

/// Sends `out` on the slot's socket, keeping what it will not take yet
/// until the socket is writable again.
fn send(slot: &mut Slot, out: &[u8], registry: &Registry, token: Token) -> io::Result<()> {
    if let Some(pending) = slot.pending.as_mut() {
        *pending = [&pending[..], out].concat().into();
        return Ok(());
    }
    let n = write_some(&mut slot.stream, out)?;
    if n < out.len() {
        slot.pending = Some(out[n..].into());
        registry.reregister(
            &mut slot.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A sink that counts nothing: this test looks at the bytes only.
    struct Nothing;

    impl Sink for Nothing {
        fn delivered(&self, _round: u32, _sent_us: u64) {}
        fn duplicate(&self) {}
        fn closed(&self) {}
    }

    #[test]
    fn what_the_socket_will_not_take_waits_for_writable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let mut conn = Conn::new();
        let welcome = [&[0x81, 18][..], br#"{"type":"welcome"}"#].concat();
        conn.on_bytes(&welcome, 1, &Nothing, &mut Vec::new())
            .unwrap();
        let mut r = Reactor {
            poll: Poll::new().unwrap(),
            slots: Vec::new(),
            free: Vec::new(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            out: Vec::new(),
            again: Vec::new(),
            run: 1,
            sink: Arc::new(Nothing),
        };
        r.add(client, conn);
        // More than loopback buffers hold while the peer does not read.
        let big: Vec<u8> = (0..32 << 20).map(|i: u32| (i % 251) as u8).collect();
        let slot = r.slots[0].as_mut().unwrap();
        send(slot, &big[..16 << 20], r.poll.registry(), Token(0)).unwrap();
        assert!(slot.pending.is_some(), "the socket took 16 MiB at once");
        send(slot, &big[16 << 20..], r.poll.registry(), Token(0)).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0; 32 << 20];
            server.read_exact(&mut got).unwrap();
            got
        });
        let mut events = Events::with_capacity(8);
        let deadline = Instant::now() + Duration::from_secs(20);
        while r.slots[0].as_ref().unwrap().pending.is_some() {
            assert!(Instant::now() < deadline, "pending bytes never left");
            r.poll
                .poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            for ev in events.iter() {
                if ev.is_writable() {
                    assert!(r.flush(ev.token().0));
                }
            }
        }
        assert!(
            reader.join().unwrap() == big,
            "bytes arrive whole, in order"
        );
    }
}
