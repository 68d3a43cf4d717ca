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
