//! The stepwise walk's parts: who opens what in a step, and the gateways'
//! Redis as it reads it.

use herald_loadtest::scenario::conn::walk::plan::{fill, pair};
use herald_loadtest::scenario::conn::walk::redis::{
    parse_info_memory, parse_redis_url, redis_memory, RedisMemory,
};

#[test]
fn steps_fill_gateways_and_workers_in_order() {
    // Step 1: 20,000 on empty gateways and workers of 19,000.
    let g = fill(&[19_000, 19_000], 20_000);
    assert_eq!(g, vec![(0, 19_000), (1, 1_000)]);
    let w = fill(&[19_000, 19_000], 20_000);
    assert_eq!(
        pair(&g, &w),
        vec![(0, vec![(0, 19_000)]), (1, vec![(1, 1_000)])]
    );
    // Step 2: 20,000 more; gateway 1 and worker 1 have 18,000 left.
    let g = fill(&[0, 18_000, 19_000], 20_000);
    let w = fill(&[0, 18_000, 19_000], 20_000);
    assert_eq!(g, vec![(1, 18_000), (2, 2_000)]);
    assert_eq!(
        pair(&g, &w),
        vec![(1, vec![(1, 18_000)]), (2, vec![(2, 2_000)])]
    );
    // Pieces that do not line up are split.
    let p = pair(&[(0, 5), (1, 10)], &[(3, 8), (4, 7)]);
    assert_eq!(p, vec![(3, vec![(0, 5), (1, 3)]), (4, vec![(1, 7)])]);
    for (need, free) in [(0, vec![5]), (7, vec![3, 0, 9]), (30, vec![10, 10])] {
        let f = fill(&free, need);
        assert_eq!(
            f.iter().map(|x| x.1).sum::<usize>(),
            need.min(free.iter().sum())
        );
        assert!(f.iter().all(|&(i, n)| n > 0 && n <= free[i]));
    }
}

#[test]
fn reads_redis_info_memory() {
    let info = "# Memory\r\nused_memory:1000448\r\nused_memory_human:977.00K\r\nused_memory_rss:7000064\r\nused_memory_rss_human:6.68M\r\nused_memory_peak:1000448\r\n";
    assert_eq!(
        parse_info_memory(info),
        Some(RedisMemory {
            used_memory: 1_000_448,
            used_memory_rss: 7_000_064,
        })
    );
}

#[test]
fn redis_urls() {
    let p = |u| parse_redis_url(u).unwrap();
    assert_eq!(
        p("redis://127.0.0.1:7000"),
        ("127.0.0.1:7000".into(), None, None)
    );
    assert_eq!(p("redis://h"), ("h:6379".into(), None, None));
    assert_eq!(
        p("redis://:pw@h:1/0"),
        ("h:1".into(), None, Some("pw".into()))
    );
    assert_eq!(
        p("redis://u:pw@h:1"),
        ("h:1".into(), Some("u".into()), Some("pw".into()))
    );
    assert!(parse_redis_url("rediss://h:1").is_err());
}

#[tokio::test]
async fn reads_redis_memory_over_resp() {
    let redis = tokio::task::spawn_blocking(herald_testing::RedisServer::start)
        .await
        .unwrap();
    let memory = redis_memory(&redis.url()).await.unwrap();
    assert!(
        memory.used_memory > 0 && memory.used_memory_rss > 0,
        "{memory:?}"
    );
    assert!(redis_memory("redis://127.0.0.1:1").await.is_err());
}
