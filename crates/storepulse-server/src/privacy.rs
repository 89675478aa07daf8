//! What of a client's address reaches the disk.
//!
//! By default only a keyed hash does: `h:` + 16 hex digits of BLAKE3 keyed with a random salt
//! that belongs to one UTC day. The salt is kept in `<data_dir>/privacy/ip-salt` so a restart
//! on the same day keeps hashes stable (a visitor is still one visitor), and it is replaced on
//! the first request of a new day, after which yesterday's hashes cannot be linked to an
//! address any more. `raw` keeps the address; `none` keeps nothing.

use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::RngCore;
use storepulse_model::Timestamp;

use crate::config::IpStorage;

pub struct ClientAnonymizer {
    mode: IpStorage,
    salt_file: PathBuf,
    current: Mutex<Option<DailySalt>>,
}

#[derive(Clone, Copy)]
struct DailySalt {
    day: i64,
    key: [u8; 32],
}

impl ClientAnonymizer {
    pub fn new(mode: IpStorage, data_dir: &Path) -> Self {
        let salt_file = data_dir.join("privacy").join("ip-salt");
        let current = read_salt(&salt_file);
        Self { mode, salt_file, current: Mutex::new(current) }
    }

    /// A rejected payload as the dead-letter log may keep it: the addresses it names (an
    /// event's `ip`, Segment's `context.ip`: the value of every `"ip"` key) emptied to `null`
    /// unless addresses are stored raw. Stored events keep them anonymized; a dead letter
    /// cannot (the payload is kept as sent, to be read and replayed), so it keeps none.
    pub fn dead_letter_payload<'a>(&self, payload: &'a [u8]) -> Cow<'a, [u8]> {
        match self.mode {
            IpStorage::Raw => Cow::Borrowed(payload),
            IpStorage::None | IpStorage::Hashed => without_ip_values(payload),
        }
    }

    /// The value to store for `ip` seen at `now`.
    pub fn client_value(&self, ip: Option<IpAddr>, now: Timestamp) -> Option<String> {
        let ip = ip?;
        match self.mode {
            IpStorage::None => None,
            IpStorage::Raw => Some(ip.to_string()),
            IpStorage::Hashed => {
                let key = self.key_for_day(now.utc_day());
                let hash = match ip {
                    IpAddr::V4(v4) => blake3::keyed_hash(&key, &v4.octets()),
                    IpAddr::V6(v6) => blake3::keyed_hash(&key, &v6.octets()),
                };
                let hex = hash.to_hex();
                let mut value = String::with_capacity(18);
                value.push_str("h:");
                value.push_str(&hex.as_str()[..16]);
                Some(value)
            }
        }
    }

    fn key_for_day(&self, day: i64) -> [u8; 32] {
        let mut current = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(salt) = *current
            && salt.day == day
        {
            return salt.key;
        }
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let salt = DailySalt { day, key };
        if let Err(error) = write_salt(&self.salt_file, salt) {
            // Hashing still works from memory; only restart stability is lost.
            tracing::warn!(%error, path = %self.salt_file.display(), "cannot persist the daily ip salt");
        }
        *current = Some(salt);
        key
    }
}

impl storepulse_model::validate::AddressPolicy for ClientAnonymizer {
    fn stored_address(&self, ip: IpAddr, at: Timestamp) -> Option<String> {
        self.client_value(Some(ip), at)
    }
}

fn read_salt(path: &Path) -> Option<DailySalt> {
    let text = std::fs::read_to_string(path).ok()?;
    let (day, hex) = text.trim().split_once(' ')?;
    let day = day.parse().ok()?;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|index| hex.get(index..index + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<_>>()?;
    Some(DailySalt { day, key: bytes.try_into().ok()? })
}

fn write_salt(path: &Path, salt: DailySalt) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let hex: String = salt.key.iter().map(|byte| format!("{byte:02x}")).collect();
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // The salt is what keeps hashes unlinkable to addresses: readable by the owner only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(format!("{} {hex}\n", salt.day).as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// `payload` with the string value of every `"ip"` key replaced by `null`. A text scan rather
/// than a JSON parse: a dead letter is often not valid JSON (that may be why it was refused),
/// and its addresses must go all the same. `"ip"` inside a string is escaped (`\"ip\"`), so
/// only keys match.
fn without_ip_values(payload: &[u8]) -> Cow<'_, [u8]> {
    const KEY: &[u8] = b"\"ip\"";
    let skip_space = |mut at: usize| {
        while payload.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        at
    };
    let mut scrubbed: Option<Vec<u8>> = None;
    // `payload[..copied]` is in `scrubbed`.
    let (mut copied, mut at) = (0, 0);
    while let Some(found) = payload[at..].windows(KEY.len()).position(|window| window == KEY) {
        let after_key = at + found + KEY.len();
        at = after_key;
        let colon = skip_space(after_key);
        if payload.get(colon) != Some(&b':') {
            continue;
        }
        let value = skip_space(colon + 1);
        if payload.get(value) != Some(&b'"') {
            continue;
        }
        // To the closing quote, past escaped characters (or to the end of a cut payload).
        let mut end = value + 1;
        while end < payload.len() && payload[end] != b'"' {
            end += if payload[end] == b'\\' { 2 } else { 1 };
        }
        let end = (end + 1).min(payload.len());
        let out = scrubbed.get_or_insert_with(|| Vec::with_capacity(payload.len()));
        out.extend_from_slice(&payload[copied..value]);
        out.extend_from_slice(b"null");
        (copied, at) = (end, end);
    }
    match scrubbed {
        None => Cow::Borrowed(payload),
        Some(mut out) => {
            out.extend_from_slice(&payload[copied..]);
            Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn hashes_are_stable_within_a_day_and_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let first = ClientAnonymizer::new(IpStorage::Hashed, dir.path());
        let morning = first.client_value(Some(ip), Timestamp(100 * DAY_MS + 1)).unwrap();
        let evening = first.client_value(Some(ip), Timestamp(101 * DAY_MS - 1)).unwrap();
        assert_eq!(morning, evening);
        assert!(morning.starts_with("h:") && morning.len() == 18);
        assert!(!morning.contains("203.0.113.9"));
        let restarted = ClientAnonymizer::new(IpStorage::Hashed, dir.path());
        assert_eq!(restarted.client_value(Some(ip), Timestamp(100 * DAY_MS + 5)).unwrap(), morning);
    }

    #[test]
    fn the_salt_rotates_daily() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let anonymizer = ClientAnonymizer::new(IpStorage::Hashed, dir.path());
        let today = anonymizer.client_value(Some(ip), Timestamp(100 * DAY_MS)).unwrap();
        let tomorrow = anonymizer.client_value(Some(ip), Timestamp(101 * DAY_MS)).unwrap();
        assert_ne!(today, tomorrow);
    }

    #[cfg(unix)]
    #[test]
    fn the_salt_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let anonymizer = ClientAnonymizer::new(IpStorage::Hashed, dir.path());
        anonymizer.client_value(Some("203.0.113.9".parse().unwrap()), Timestamp(0));
        let mode = std::fs::metadata(dir.path().join("privacy").join("ip-salt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn dead_letter_payloads_keep_no_address_unless_addresses_are_kept_raw() {
        let dir = tempfile::tempdir().unwrap();
        let payload = br#"{"ip" : "203.0.113.9","context":{"ip":"2001:db8::1"},"q":"say \"ip\": \"x\"","n":{"ip":7}}"#;
        let hashed = ClientAnonymizer::new(IpStorage::Hashed, dir.path());
        let kept = hashed.dead_letter_payload(payload);
        assert_eq!(
            std::str::from_utf8(&kept).unwrap(),
            r#"{"ip" : null,"context":{"ip":null},"q":"say \"ip\": \"x\"","n":{"ip":7}}"#
        );
        let none = ClientAnonymizer::new(IpStorage::None, dir.path());
        assert_eq!(none.dead_letter_payload(payload), kept);
        // A payload cut inside the value, and one naming no address, are handled too.
        assert_eq!(&*hashed.dead_letter_payload(br#"{"ip":"203.0."#), br#"{"ip":null"#);
        assert!(matches!(hashed.dead_letter_payload(b"{\"a\":1}"), Cow::Borrowed(_)));
        let raw = ClientAnonymizer::new(IpStorage::Raw, dir.path());
        assert_eq!(&*raw.dead_letter_payload(payload), &payload[..]);
    }

    #[test]
    fn raw_and_none_modes() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let raw = ClientAnonymizer::new(IpStorage::Raw, dir.path());
        assert_eq!(raw.client_value(Some(ip), Timestamp(0)).as_deref(), Some("203.0.113.9"));
        let none = ClientAnonymizer::new(IpStorage::None, dir.path());
        assert_eq!(none.client_value(Some(ip), Timestamp(0)), None);
    }
}
