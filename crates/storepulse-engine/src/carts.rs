//! Carts per session, for the value of abandoned carts: what a session put in its cart (adds
//! minus removes, at the lines' prices) and whether it went on to buy.
//!
//! A session's cart belongs to the range its first cart add falls in, and to that add's row
//! dimensions (store, country, device, source, …). A cart counts as abandoned when the session
//! never bought. Carts are kept `retention` after the session's last cart or purchase event.

use crate::facts::FactKey;
use crate::id_table::IdTable;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SessionCart {
    pub first_cart_ms: i64,
    last_ms: i64,
    /// The event-row key of the first cart add.
    pub key: FactKey,
    /// Minor units of `currency`.
    pub value: i64,
    pub currency: [u8; 3],
    pub purchased: bool,
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
            value: 0,
            currency,
            purchased: false,
        });
        if time_ms < cart.first_cart_ms {
            cart.first_cart_ms = time_ms;
            cart.key = key;
        }
        cart.last_ms = cart.last_ms.max(time_ms);
        if cart.currency == currency {
            cart.value = (cart.value + change).max(0);
        }
    }

    /// A purchase in the session: its cart, if any, was not abandoned.
    pub fn purchase(&mut self, session: u64, time_ms: i64) {
        if let Some(cart) = self.sessions.get_mut(session) {
            cart.purchased = true;
            cart.last_ms = cart.last_ms.max(time_ms);
        }
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
