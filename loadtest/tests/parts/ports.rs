//! Source ports from the plan: each connect its own, round the range, and a
//! port the kernel refuses skipped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use herald_loadtest::ports::PortPlan;

#[test]
fn ports_go_round_from_1024_to_65535() {
    let plan = PortPlan::starting_at(65534);
    assert_eq!(
        [plan.take(), plan.take(), plan.take()],
        [65534, 65535, 1024]
    );
}

#[tokio::test]
async fn each_connect_takes_the_next_port_and_skips_one_in_use() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = server.local_addr().unwrap();
    let source = Ipv4Addr::new(127, 0, 0, 7);
    // A listener on the plan's first port: bind refuses it, the plan
    // moves on.
    let taken = TcpListener::bind(SocketAddr::from((source, 0))).unwrap();
    let first = taken.local_addr().unwrap().port();
    let plan = PortPlan::starting_at(first);
    let a = plan.connect(source, to).await.unwrap();
    let b = plan.connect(source, to).await.unwrap();
    let (a, b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    assert_eq!(a.ip(), source);
    assert_eq!(a.port(), first.wrapping_add(1).max(1024));
    assert_eq!(b.port(), a.port() + 1);
}
