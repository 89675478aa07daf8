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
//!
//! A cart is kept in its session's funnel trail (`FunnelLog::update_cart` in [`crate::funnel`]),
//! which every event of the session finds already (by the slot its live entry remembers): a
//! table of carts keyed by session cost a cache miss on nearly every cart event, and its
//! growth (leaving carts out altogether made applying shop traffic ~100 ns an event faster;
//! twenty-fourth session). Snapshots still hold the carts as a map by session
//! (`StoredCarts`), as they did.

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

    /// Whether the cart was abandoned and its first add falls in `[from, to)`.
    pub fn abandoned_in(&self, from: i64, to: i64) -> bool {
        !self.purchased && self.first_cart_ms >= from && self.first_cart_ms < to
    }

    /// The session's last cart or purchase event: retention counts from here.
    pub(crate) fn last_ms(&self) -> i64 {
        self.last_ms
    }
}

/// A cart add (`change` > 0) or removal (< 0) of `change` minor units in `currency`, in the
/// session whose cart (if any yet) is `cart`.
pub(crate) fn add(
    cart: &mut Option<Box<SessionCart>>,
    key: FactKey,
    time_ms: i64,
    change: i64,
    currency: [u8; 3],
) {
    let cart = cart.get_or_insert_with(|| {
        Box::new(SessionCart {
            first_cart_ms: time_ms,
            last_ms: time_ms,
            key,
            sum: 0,
            currency,
            purchased: false,
        })
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

/// A purchase in the session whose cart (if any yet) is `cart`: its cart, before or after,
/// was not abandoned.
pub(crate) fn purchase(cart: &mut Option<Box<SessionCart>>, time_ms: i64) {
    let cart = cart.get_or_insert_with(|| {
        Box::new(SessionCart {
            first_cart_ms: NO_CART_YET,
            last_ms: time_ms,
            key: FactKey::default(),
            sum: 0,
            currency: [0; 3],
            purchased: true,
        })
    });
    cart.purchased = true;
    cart.last_ms = cart.last_ms.max(time_ms);
}

/// The carts section of a snapshot: by session id hash, and the retention (kept for the
/// format; the engine's configuration decides retention).
#[derive(serde::Deserialize)]
pub(crate) struct StoredCarts {
    pub(crate) sessions: IdTable<SessionCart>,
    _retention_ms: i64,
}

/// [`StoredCarts`] as written, from the carts the trails hold.
#[derive(serde::Serialize)]
pub(crate) struct StoredCartsRef<'a> {
    sessions: CartsBySession<'a>,
    retention_ms: i64,
}

impl<'a> StoredCartsRef<'a> {
    pub(crate) fn new(carts: Vec<(u64, &'a SessionCart)>, retention_ms: i64) -> Self {
        Self { sessions: CartsBySession(carts), retention_ms }
    }
}

/// A map of session id hash → cart, as [`IdTable`] writes one.
struct CartsBySession<'a>(Vec<(u64, &'a SessionCart)>);

impl serde::Serialize for CartsBySession<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (session, cart) in &self.0 {
            map.serialize_entry(session, cart)?;
        }
        map.end()
    }
}
