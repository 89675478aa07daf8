//! Query strings as the seeds' FastAPI endpoints read them, for the paths that stand in for
//! them: values percent-decoded (`+` a space), and a key given twice read as its last value
//! (Starlette's `QueryParams[key]`), so a client's URL means what it meant to the seed.

/// The last value of `name` in `query`, decoded; `None` when the key is absent.
pub fn last_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == name)
        .last()
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::last_value;

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
