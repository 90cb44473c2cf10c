//! Keyset pagination. A page token is an opaque, URL-safe encoding of the sort key and id of
//! the last row served; the next page starts strictly after it, so rows inserted meanwhile
//! never shift or repeat a page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::enums::SortOrder;

/// Largest page a client may ask for; a list without `limit` returns every row.
pub const MAX_LIMIT: u32 = 1000;

/// The column a list is ordered by (always followed by `id` to break ties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortKey {
    #[serde(rename = "t")]
    TimeCreated,
    #[serde(rename = "n")]
    Name,
}

/// The sort key value of the last row served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    Micros(i64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: SortKey,
    #[serde(rename = "o")]
    pub order: SortOrder,
    #[serde(rename = "k")]
    pub key: KeyValue,
    #[serde(rename = "i")]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("page token {0:?} is not valid for this list; pass back the opc-next-page value unchanged")]
pub struct BadPageToken(pub String);

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serialises"))
    }

    /// Decodes a token and checks it was issued for the same ordering.
    pub fn decode(token: &str, sort: SortKey, order: SortOrder) -> Result<Cursor, BadPageToken> {
        let bad = || BadPageToken(token.chars().take(64).collect());
        if token.len() > 2048 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let key_matches = matches!(
            (cursor.sort, &cursor.key),
            (SortKey::TimeCreated, KeyValue::Micros(_)) | (SortKey::Name, KeyValue::Text(_))
        );
        if cursor.sort != sort || cursor.order != order || !key_matches {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// What a list call asks of the store: order, where to start, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub sort: SortKey,
    pub order: SortOrder,
    /// `None`: every remaining row.
    pub limit: Option<u32>,
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// All rows in the default order (newest first).
    pub fn all() -> Self {
        PageRequest {
            sort: SortKey::TimeCreated,
            order: SortOrder::Desc,
            limit: None,
            after: None,
        }
    }
}

/// One page of rows and, when more rows follow, the cursor for the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row only proves
    /// that a next page exists. `key` gives the sort key value and id of a row.
    pub fn from_rows(
        mut rows: Vec<T>,
        req: &PageRequest,
        key: impl Fn(&T) -> (KeyValue, String),
    ) -> Page<T> {
        let next = match req.limit {
            Some(limit) if rows.len() > limit as usize => {
                rows.truncate(limit as usize);
                rows.last().map(|last| {
                    let (key, id) = key(last);
                    Cursor {
                        sort: req.sort,
                        order: req.order,
                        key,
                        id,
                    }
                })
            }
            _ => None,
        };
        Page { items: rows, next }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_mismatch() {
        let c = Cursor {
            sort: SortKey::Name,
            order: SortOrder::Asc,
            key: KeyValue::Text("web-01".into()),
            id: "ocid1.x.oc1..a".into(),
        };
        let t = c.encode();
        assert_eq!(Cursor::decode(&t, SortKey::Name, SortOrder::Asc), Ok(c));
        assert!(Cursor::decode(&t, SortKey::Name, SortOrder::Desc).is_err());
        assert!(Cursor::decode(&t, SortKey::TimeCreated, SortOrder::Asc).is_err());
        assert!(Cursor::decode("bogus!!", SortKey::Name, SortOrder::Asc).is_err());
        assert!(Cursor::decode("", SortKey::Name, SortOrder::Asc).is_err());
    }

    #[test]
    fn next_cursor_only_when_more_rows() {
        let req = PageRequest {
            limit: Some(2),
            ..PageRequest::all()
        };
        let key = |v: &i64| (KeyValue::Micros(*v), v.to_string());
        let p = Page::from_rows(vec![3, 2, 1], &req, key);
        assert_eq!(p.items, vec![3, 2]);
        assert_eq!(p.next.unwrap().id, "2");
        let p = Page::from_rows(vec![3, 2], &req, key);
        assert!(p.next.is_none());
    }
}
