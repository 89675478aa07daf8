//! What of a client's address reaches the disk.
//!
//! By default only a keyed hash does: `h:` + 16 hex digits of BLAKE3 keyed with a random salt
//! that belongs to one UTC day. The salt is kept in `<data_dir>/privacy/ip-salt` so a restart
//! on the same day keeps hashes stable (a visitor is still one visitor), and it is replaced on
//! the first request of a new day, after which yesterday's hashes cannot be linked to an
//! address any more. `raw` keeps the address; `none` keeps nothing.

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
    fn raw_and_none_modes() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let raw = ClientAnonymizer::new(IpStorage::Raw, dir.path());
        assert_eq!(raw.client_value(Some(ip), Timestamp(0)).as_deref(), Some("203.0.113.9"));
        let none = ClientAnonymizer::new(IpStorage::None, dir.path());
        assert_eq!(none.client_value(Some(ip), Timestamp(0)), None);
    }
}
