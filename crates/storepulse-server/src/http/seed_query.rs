//! Query strings as the seeds' FastAPI endpoints read them, for the paths that stand in for
//! them: values percent-decoded (`+` a space), and a key given twice read as its last value
//! (Starlette's `QueryParams[key]`), so a client's URL means what it meant to the seed.
//!
//! Seed 3's read endpoints take typed parameters and refuse unknown ones, but FastAPI ignored
//! unknown parameters, and browsers' libraries (jQuery's `cache: false`, axios interceptors)
//! and some proxies add a cache buster `_=<time>`: that one name is dropped before parsing.

use axum::extract::Query;
use axum::http::Uri;
use serde::de::DeserializeOwned;
use url::form_urlencoded;

use crate::error::ApiError;

/// The conventional cache-buster parameter.
const CACHE_BUSTER: &str = "_";

/// `query` parsed as `T` (refusals as every typed endpoint words them), without any cache
/// buster `_`.
pub fn parse_without_cache_buster<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
    let kept = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.filter(|(key, _)| key != CACHE_BUSTER))
        .finish();
    // The serializer percent-encodes whatever a URI may not hold, so this always parses.
    let uri: Uri = format!("/?{kept}")
        .parse()
        .map_err(|_| ApiError::invalid_parameter("query", "is not a valid query string"))?;
    Query::<T>::try_from_uri(&uri)
        .map(|Query(params)| params)
        .map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))
}

/// The last value of `name` in `query`, decoded; `None` when the key is absent.
pub fn last_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == name)
        .last()
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::{last_value, parse_without_cache_buster};

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        store: Option<String>,
    }

    #[test]
    fn only_the_cache_buster_is_dropped() {
        let parse = |query| parse_without_cache_buster::<Params>(Some(query));
        assert_eq!(parse("_=1700000000&store=a%20b").unwrap().store.as_deref(), Some("a b"));
        assert_eq!(parse("_").unwrap().store, None);
        assert!(parse("bogus=1").is_err());
        assert!(parse("__=1").is_err());
    }

    #[test]
    fn values_are_decoded_and_the_last_one_wins() {
        assert_eq!(last_value(Some("k=%35"), "k").as_deref(), Some("5"));
        assert_eq!(last_value(Some("k%5Fx=1"), "k_x").as_deref(), Some("1"));
        assert_eq!(last_value(Some("k=0.5&k=2"), "k").as_deref(), Some("2"));
        assert_eq!(last_value(Some("a+b=c+d"), "a b").as_deref(), Some("c d"));
        assert_eq!(last_value(Some("k"), "k").as_deref(), Some(""));
        assert_eq!(last_value(Some("x=1"), "k"), None);
        assert_eq!(last_value(None, "k"), None);
    }
}
