//! Everything access control keeps: keys, the entities they belong to, and the ledger of their
//! spend. One database holds all three, so a budget hold can cover a key and its team in one
//! transaction; the gateway holds the store as this one trait object.

use crate::entities::EntityStore;
use crate::keys::KeyStore;
use crate::ledger::Ledger;
use crate::responses::ResponseStore;

/// Keys, entities, the ledger and stored responses, in SQLite or Postgres.
pub trait AccessStore: KeyStore + EntityStore + Ledger + ResponseStore {}

impl<T: KeyStore + EntityStore + Ledger + ResponseStore> AccessStore for T {}
