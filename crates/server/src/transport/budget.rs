//! The server-wide memory budget for request bytes in flight: every body and gRPC message a
//! connection reads is counted against it, whatever the protocol and however many connections
//! or HTTP/2 streams carry them, from the moment its bytes are accepted until its request is
//! answered.
//!
//! Per-connection limits cannot bound memory on HTTP/2: one connection may open a hundred
//! streams, each sending most of a body limit and then stalling, and a thousand connections
//! multiply that again. The budget is the one bound that holds: a request whose body would take
//! it past its total is refused at once (503 `overloaded` with `Retry-After`, gRPC
//! `RESOURCE_EXHAUSTED`), never buffered while it waits. Bytes are reserved before they are
//! read (the whole `Content-Length` or gRPC message length when the request declares it, else
//! frame by frame), in KiB, from a semaphore, so a reservation never blocks.
//!
//! An eighth of the budget is kept for small bodies (up to [`SMALL_BODY_BYTES`], what nearly
//! every prediction request is): a flood of large bodies, stalled or not, fills the rest and is
//! refused there, while ordinary requests go on being served from the reserve.

use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The unit of reservation: a semaphore permit is a KiB, so a `u32` count covers any body.
const UNIT: usize = 1024;
/// Bodies up to this size may use the reserve when the rest of the budget is taken.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// The budget: how many bytes of request bodies may be held at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    /// Seven eighths of the budget, for any body.
    units: Arc<Semaphore>,
    /// The last eighth, for small bodies only.
    reserve: Arc<Semaphore>,
    /// `warden_body_bytes_in_flight`: bytes reserved now.
    in_flight: IntGauge,
}

/// Bytes reserved from the budget for one request; returned when dropped.
#[derive(Debug)]
pub struct BudgetPermit {
    permit: Option<OwnedSemaphorePermit>,
    /// Units taken from the reserve (a small body only).
    reserved: Option<OwnedSemaphorePermit>,
    bytes: usize,
    in_flight: IntGauge,
}

impl BodyBudget {
    /// A budget of `total_bytes` (at least one unit), reported in `in_flight`.
    pub fn new(total_bytes: usize, in_flight: IntGauge) -> BodyBudget {
        let units = total_bytes.div_ceil(UNIT).clamp(2, Semaphore::MAX_PERMITS);
        let reserve = (units / 8).max(1);
        BodyBudget {
            units: Arc::new(Semaphore::new(units - reserve)),
            reserve: Arc::new(Semaphore::new(reserve)),
            in_flight,
        }
    }

    /// The bytes reserved now.
    pub fn in_flight_bytes(&self) -> i64 {
        self.in_flight.get()
    }

    /// An empty reservation, to grow as bytes arrive.
    pub fn empty(&self) -> BudgetPermit {
        BudgetPermit {
            permit: None,
            reserved: None,
            bytes: 0,
            in_flight: self.in_flight.clone(),
        }
    }

    /// Grows `permit` to hold at least `bytes`; false (the permit unchanged) when the budget
    /// has not that much left.
    pub fn grow_to(&self, permit: &mut BudgetPermit, bytes: usize) -> bool {
        let held = permit.bytes.div_ceil(UNIT);
        let wanted = bytes.div_ceil(UNIT);
        if wanted <= held {
            return true;
        }
        let Ok(more) = u32::try_from(wanted - held) else {
            return false;
        };
        let (pool, slot) = match Arc::clone(&self.units).try_acquire_many_owned(more) {
            Ok(extra) => (extra, &mut permit.permit),
            Err(_) if bytes <= SMALL_BODY_BYTES => {
                match Arc::clone(&self.reserve).try_acquire_many_owned(more) {
                    Ok(extra) => (extra, &mut permit.reserved),
                    Err(_) => return false,
                }
            }
            Err(_) => return false,
        };
        match slot {
            Some(held) => held.merge(pool),
            None => *slot = Some(pool),
        }
        let added = wanted * UNIT - permit.bytes;
        permit.bytes = wanted * UNIT;
        self.in_flight.add(added as i64);
        true
    }
}

impl BudgetPermit {
    /// The bytes this permit holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        self.in_flight.sub(self.bytes as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: usize) -> BodyBudget {
        BodyBudget::new(bytes, IntGauge::new("in_flight", "test").unwrap())
    }

    #[test]
    fn reservations_share_the_total_and_return_it_when_dropped() {
        // 8 MiB: 7 for any body, 1 kept for small ones.
        let budget = budget(8 << 20);
        let mut first = budget.empty();
        assert!(budget.grow_to(&mut first, (4 << 20) - 100));
        assert_eq!(first.bytes(), 4 << 20, "whole KiB");
        let mut second = budget.empty();
        assert!(
            !budget.grow_to(&mut second, 4 << 20),
            "4 MiB + 4 MiB is over the 7 MiB large bodies may take"
        );
        assert_eq!(second.bytes(), 0, "a refused reservation holds nothing");
        assert!(budget.grow_to(&mut second, 3 << 20));
        assert_eq!(budget.in_flight_bytes(), 7 << 20);
        drop(first);
        assert!(budget.grow_to(&mut second, 6 << 20), "grown in place");
        assert_eq!(budget.in_flight_bytes(), 6 << 20);
        drop(second);
        assert_eq!(budget.in_flight_bytes(), 0);
    }

    #[test]
    fn small_bodies_are_served_from_the_reserve_when_large_ones_fill_the_rest() {
        let budget = budget(8 << 20);
        let mut large = budget.empty();
        assert!(budget.grow_to(&mut large, 7 << 20));
        let mut big = budget.empty();
        assert!(
            !budget.grow_to(&mut big, 128 << 10),
            "not small: no reserve"
        );
        let mut smalls: Vec<BudgetPermit> = Vec::new();
        for _ in 0..16 {
            let mut small = budget.empty();
            assert!(budget.grow_to(&mut small, SMALL_BODY_BYTES));
            smalls.push(small);
        }
        let mut one_more = budget.empty();
        assert!(!budget.grow_to(&mut one_more, 1), "the reserve is 1 MiB");
        drop(smalls);
        assert!(budget.grow_to(&mut one_more, 1));
        drop((large, one_more));
        assert_eq!(budget.in_flight_bytes(), 0);
    }

    #[test]
    fn a_reservation_larger_than_the_budget_is_refused() {
        let budget = budget(8 << 20);
        let mut permit = budget.empty();
        assert!(!budget.grow_to(&mut permit, (7 << 20) + 1));
        assert!(budget.grow_to(&mut permit, 7 << 20));
    }
}
