//! Who opens what in a step: the gateways and workers with room, filled
//! in order.

/// Spreads `need` over the free capacities in order, filling each before
/// the next: `(index, count)` pieces. Whatever does not fit is left out.
pub fn fill(free: &[usize], need: usize) -> Vec<(usize, usize)> {
    let mut left = need;
    let mut out = Vec::new();
    for (i, &f) in free.iter().enumerate() {
        if left == 0 {
            break;
        }
        let n = f.min(left);
        if n > 0 {
            out.push((i, n));
            left -= n;
        }
    }
    out
}

/// Pairs the gateways' pieces with the workers' (both from [`fill`], of the
/// same total): per worker, the `(gateway, count)` it opens.
pub fn pair(
    gateways: &[(usize, usize)],
    workers: &[(usize, usize)],
) -> Vec<(usize, Vec<(usize, usize)>)> {
    let mut out: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
    let mut gws = gateways.iter().copied();
    let mut cur = gws.next();
    for &(w, mut n) in workers {
        let mut targets = Vec::new();
        while n > 0 {
            let Some((g, left)) = cur else { break };
            let take = left.min(n);
            targets.push((g, take));
            n -= take;
            cur = if left > take {
                Some((g, left - take))
            } else {
                gws.next()
            };
        }
        if !targets.is_empty() {
            out.push((w, targets));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
