//! Seed 4's `POST /buy` payload: `{user_id, promotion_id, product_id, product_quantity}`.
//!
//! All four are required integers (an integer string is accepted, as pydantic's lax mode
//! did) and `product_quantity` must be > 0; other keys are ignored, as in seed 4. A buy becomes
//! a native `purchase` of one line carrying the promotion, so it counts everywhere a purchase
//! counts (promotion stats, KPIs, trending), not only in `/stats`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::decode::decode_collecting;
use crate::error::{ErrorCode, FieldError, ValidationErrors};
use crate::event::Event;
use crate::raw::{RawEvent, RawOrder, RawProduct, RawPromotion};
use crate::validate::{ValidationContext, validate_event};

/// The name of the event a buy becomes.
pub const EVENT_NAME: &str = "promotion_buy";

/// The fields seed 4 required, in its order.
pub const REQUIRED_FIELDS: [&str; 4] =
    ["user_id", "promotion_id", "product_id", "product_quantity"];

#[derive(Debug, Deserialize)]
struct PromotionBuy {
    user_id: Option<Integer>,
    promotion_id: Option<Integer>,
    product_id: Option<Integer>,
    product_quantity: Option<Integer>,
}

/// An integer, or text holding one.
#[derive(Clone, Copy, Debug)]
struct Integer(i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor;
        impl Visitor<'_> for IntegerVisitor {
            type Value = Integer;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a valid integer")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Integer, E> {
                Ok(Integer(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Integer, E> {
                i64::try_from(value).map(Integer).map_err(|_| E::custom("integer is too large"))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Integer, E> {
                if value.fract() == 0.0 && value.abs() < 9.0e15 {
                    Ok(Integer(value as i64))
                } else {
                    Err(E::custom(
                        "Input should be a valid integer, got a number with a fractional part",
                    ))
                }
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Integer, E> {
                value.trim().parse().map(Integer).map_err(|_| {
                    E::custom(
                        "Input should be a valid integer, unable to parse string as an integer",
                    )
                })
            }
        }
        deserializer.deserialize_any(IntegerVisitor)
    }
}

/// Decodes and validates one seed-4 buy; `order_id` names the order the buy becomes.
pub fn decode_promotion_buy(
    json: &str,
    order_id: &str,
    context: &ValidationContext<'_>,
) -> Result<Event, ValidationErrors> {
    let (decoded, mut errors) = decode_collecting::<PromotionBuy>(json);
    let Some(buy) = decoded else { return Err(ValidationErrors(errors)) };
    let fields = [buy.user_id, buy.promotion_id, buy.product_id, buy.product_quantity];
    for (field, value) in REQUIRED_FIELDS.into_iter().zip(fields) {
        if value.is_none() && !errors.iter().any(|error| error.field == field) {
            errors.push(FieldError::new(field, ErrorCode::Missing, "Field required"));
        }
    }
    if let Some(Integer(quantity)) = buy.product_quantity
        && quantity <= 0
    {
        errors.push(FieldError::new(
            "product_quantity",
            ErrorCode::InvalidValue,
            "Input should be greater than 0",
        ));
    }
    if !errors.is_empty() {
        return Err(ValidationErrors(errors));
    }
    let text = |value: Option<Integer>| value.map(|Integer(n)| n.to_string().into());
    // The order id and the event's name are Storepulse's, not the client's, so the client's
    // limits do not apply to them: validation sees a one-character stand-in for the order id
    // (a purchase needs one) and no name, and both are set once the client's four fields have
    // passed. Checked as sent, a tight `max_id_chars` refused every buy, naming `name` and
    // `order.id`, which no /buy body has.
    let raw = RawEvent {
        r#type: Some("purchase".into()),
        user_id: text(buy.user_id),
        order: Some(Box::new(RawOrder { id: Some("b".into()), ..RawOrder::default() })),
        items: Some(vec![Some(RawProduct {
            id: text(buy.product_id),
            quantity: buy.product_quantity.map(|Integer(n)| n),
            ..RawProduct::default()
        })]),
        promotion: Some(Box::new(RawPromotion {
            id: text(buy.promotion_id),
            ..RawPromotion::default()
        })),
        ..RawEvent::default()
    };
    let mut event = validate_event(raw, Vec::new(), context).map_err(|invalid| {
        // Field paths of the native event, renamed to the seed's.
        ValidationErrors(
            invalid
                .0
                .into_iter()
                .map(|mut error| {
                    error.field = match error.field.as_str() {
                        "items[0].quantity" => "product_quantity".into(),
                        "items[0].id" => "product_id".into(),
                        "promotion.id" => "promotion_id".into(),
                        other => other.to_owned(),
                    };
                    error
                })
                .collect(),
        )
    })?;
    event.name = Some(EVENT_NAME.into());
    if let Some(order) = event.order.as_mut() {
        order.id = Some(order_id.into());
    }
    Ok(event)
}
