//! Requests refused in a row for the rate limit: a client that goes on
//! past `limits.close_after_refusals` is closed (4029).

#[derive(Default)]
pub(crate) struct Refusals(u32);

impl Refusals {
    /// A request within the limit ends the run.
    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }

    /// One more request refused; whether the run reached `close_after` (0:
    /// never).
    pub(crate) fn refuse(&mut self, close_after: u32) -> bool {
        self.0 += 1;
        close_after > 0 && self.0 >= close_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_refusals_closes_at_the_limit_unless_broken() {
        let mut refusals = Refusals::default();
        assert!(!refusals.refuse(3));
        assert!(!refusals.refuse(3));
        refusals.reset();
        assert!(!refusals.refuse(3));
        assert!(!refusals.refuse(3));
        assert!(refusals.refuse(3));
        assert!((0..100).all(|_| !refusals.refuse(0)), "0 never closes");
    }
}
