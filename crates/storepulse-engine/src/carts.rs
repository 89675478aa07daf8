//! Carts per session, for the value of abandoned carts: what a session put in its cart (adds
//! minus removes, at the lines' prices) and whether it went on to buy.
//!
//! A session's cart belongs to the range its first cart add falls in, and to that add's row
//! dimensions (store, country, device, source, …). A cart counts as abandoned when the session
//! never bought. Carts are kept `retention` after the session's last cart or purchase event.
//! Events may come in any order (a shop's backend often sends the purchase before the
//! browser's cart beacons arrive): a purchase before any cart event is remembered, and the
//! value is the sum of every add and removal, not clamped change by change (a removal sent
//! before its add would otherwise be lost and leave the add standing).

use crate::facts::FactKey;
use crate::id_table::IdTable;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SessionCart {
    /// [`NO_CART_YET`] while only a purchase was seen.
    pub first_cart_ms: i64,
    last_ms: i64,
    /// The event-row key of the first cart add.
    pub key: FactKey,
    /// Minor units of `currency`: adds minus removals, below zero when more was removed than
    /// added (see [`SessionCart::value`]).
    sum: i64,
    pub currency: [u8; 3],
    pub purchased: bool,
}

/// `first_cart_ms` of a session seen buying before any cart event.
const NO_CART_YET: i64 = i64::MAX;

impl SessionCart {
    /// What is in the cart, in minor units of `currency` (never below zero).
    pub fn value(&self) -> i64 {
        self.sum.max(0)
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CartTracker {
    sessions: IdTable<SessionCart>,
    retention_ms: i64,
}

impl CartTracker {
    pub fn new(retention_ms: i64) -> Self {
        Self { retention_ms, ..Self::default() }
    }

    pub fn set_retention(&mut self, retention_ms: i64) {
        self.retention_ms = retention_ms;
    }

    /// A cart add (`change` > 0) or removal (< 0) of `change` minor units in `currency`.
    pub fn cart(
        &mut self,
        session: u64,
        key: FactKey,
        time_ms: i64,
        change: i64,
        currency: [u8; 3],
    ) {
        let (cart, _) = self.sessions.get_or_insert_with(session, || SessionCart {
            first_cart_ms: time_ms,
            last_ms: time_ms,
            key,
            sum: 0,
            currency,
            purchased: false,
        });
        if time_ms < cart.first_cart_ms {
            if cart.first_cart_ms == NO_CART_YET {
                cart.currency = currency;
            }
            cart.first_cart_ms = time_ms;
            cart.key = key;
        }
        cart.last_ms = cart.last_ms.max(time_ms);
        if cart.currency == currency {
            cart.sum += change;
        }
    }

    /// A purchase in the session: its cart, before or after, was not abandoned.
    pub fn purchase(&mut self, session: u64, time_ms: i64) {
        let (cart, _) = self.sessions.get_or_insert_with(session, || SessionCart {
            first_cart_ms: NO_CART_YET,
            last_ms: time_ms,
            key: FactKey::default(),
            sum: 0,
            currency: [0; 3],
            purchased: true,
        });
        cart.purchased = true;
        cart.last_ms = cart.last_ms.max(time_ms);
    }

    pub fn prune(&mut self, now_ms: i64) {
        let from = now_ms - self.retention_ms;
        self.sessions.retain(|_, cart| cart.last_ms >= from);
    }

    /// Every abandoned cart whose first add falls in `[from, to)`.
    pub fn abandoned(&self, from: i64, to: i64) -> impl Iterator<Item = &SessionCart> {
        self.sessions.values().filter(move |cart| {
            !cart.purchased && cart.first_cart_ms >= from && cart.first_cart_ms < to
        })
    }

    pub fn heap_bytes(&self) -> usize {
        self.sessions.heap_bytes()
    }
}
