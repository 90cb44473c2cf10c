//! Pure domain logic of osm: OCIDs, the resource models the store keeps, wire enums,
//! validation of operator input, page cursors and HTTP request signatures.
//!
//! Nothing here does I/O or async work; time-dependent functions take `now` as an
//! argument so tests never wait for a clock.

pub mod ecosystem;
pub mod enums;
pub mod errata;
pub mod httpsig;
pub mod ids;
pub mod inventory;
pub mod lifecycle;
pub mod model;
pub mod osv;
pub mod page;
pub mod report;
pub mod schedule;
pub mod time;
pub mod validate;
pub mod work;

pub use enums::*;
pub use model::*;
