//! Printing results: `--output json` is the API's JSON byte for byte in content and key order
//! (only re-indented); `--output table` picks the columns a person reads.

use comfy_table::{ContentArrangement, Table, presets};
use indexmap::IndexMap;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::Failure;
use crate::cli::Output;

/// What a list holds, which decides its table columns.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Compartment,
    Instance,
    Group,
    Job,
    WorkRequest,
    Log,
    Error,
    InstallKey,
    Erratum,
}

impl Kind {
    /// Header and field of each column; `*` fields are computed (see [`cell`]).
    fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Compartment => &[
                ("NAME", "name"),
                ("ID", "id"),
                ("PARENT", "compartmentId"),
                ("STATE", "lifecycleState"),
                ("CREATED", "timeCreated"),
            ],
            Kind::Instance => &[
                ("NAME", "displayName"),
                ("ID", "id"),
                ("STATUS", "status"),
                ("OS", "osFamily"),
                ("UPDATES", "updatesAvailable"),
                ("REBOOT", "isRebootRequired"),
                ("LAST CHECK-IN", "lastCheckin"),
            ],
            Kind::Group => &[
                ("NAME", "displayName"),
                ("ID", "id"),
                ("INSTANCES", "managedInstanceCount"),
                ("OS", "osFamily"),
                ("STATE", "lifecycleState"),
            ],
            Kind::Job => &[
                ("NAME", "displayName"),
                ("ID", "id"),
                ("OPERATION", "operationType"),
                ("SCHEDULE", "scheduleType"),
                ("NEXT RUN", "timeNextExecution"),
                ("LAST RUN", "timeLastExecution"),
                ("TARGETS", "*targets"),
                ("STATE", "lifecycleState"),
            ],
            Kind::WorkRequest => &[
                ("ID", "id"),
                ("OPERATION", "operationType"),
                ("STATUS", "status"),
                ("DONE", "*percent"),
                ("ACCEPTED", "timeAccepted"),
                ("DESCRIPTION", "description"),
            ],
            Kind::Log => &[("TIME", "timestamp"), ("MESSAGE", "message")],
            Kind::Error => &[
                ("TIME", "timestamp"),
                ("CODE", "code"),
                ("MESSAGE", "message"),
            ],
            Kind::Erratum => &[
                ("NAME", "name"),
                ("TYPE", "advisoryType"),
                ("ISSUED", "issued"),
                ("CVES", "*cves"),
                ("SYNOPSIS", "synopsis"),
                ("ID", "id"),
            ],
            Kind::InstallKey => &[
                ("NAME", "displayName"),
                ("ID", "id"),
                ("COMPARTMENT", "compartmentId"),
                ("CREATED", "timeCreated"),
                ("REVOKED", "timeRevoked"),
            ],
        }
    }
}

fn bad_json(e: impl std::fmt::Display) -> Failure {
    Failure::Connection(format!("the server answered malformed JSON: {e}"))
}

/// The JSON text re-indented, keys and values untouched.
pub fn pretty(json: &[u8]) -> Result<String, Failure> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(json);
    let mut ser = serde_json::Serializer::pretty(&mut out);
    serde_transcode::transcode(&mut de, &mut ser).map_err(bad_json)?;
    de.end().map_err(bad_json)?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// One resource.
pub fn object(output: Output, body: &[u8]) -> Result<(), Failure> {
    match output {
        Output::Json => println!("{}", pretty(body)?),
        Output::Table => {
            let fields: IndexMap<String, Value> = serde_json::from_slice(body).map_err(bad_json)?;
            let mut table = plain_table();
            for (k, v) in &fields {
                table.add_row(vec![k.clone(), render(v)]);
            }
            println!("{}", finish(table));
        }
    }
    Ok(())
}

/// Rows of a list.
pub fn list(output: Output, kind: Kind, rows: &[Box<RawValue>]) -> Result<(), Failure> {
    match output {
        Output::Json => {
            let joined = serde_json::to_vec(rows).map_err(bad_json)?;
            println!("{}", pretty(&joined)?);
        }
        Output::Table => {
            let mut table = plain_table();
            table.set_header(kind.columns().iter().map(|(h, _)| *h));
            for row in rows {
                let v: Value = serde_json::from_str(row.get()).map_err(bad_json)?;
                table.add_row(kind.columns().iter().map(|(_, f)| cell(&v, f)));
            }
            println!("{}", finish(table));
        }
    }
    Ok(())
}

fn plain_table() -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    t
}

/// Columns two spaces apart, nothing before the first or after the last.
fn finish(mut table: Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.trim_fmt()
}

fn cell(row: &Value, field: &str) -> String {
    match field {
        "*targets" => {
            let names = |k: &str, prefix: &str| -> Vec<String> {
                row[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let name = r["displayName"].as_str().or(r["id"].as_str());
                        format!("{prefix}{}", name.unwrap_or("?"))
                    })
                    .collect()
            };
            let mut all = names("managedInstanceGroups", "group ");
            all.extend(names("managedInstances", ""));
            if all.is_empty() {
                "-".into()
            } else {
                all.join(", ")
            }
        }
        "*cves" => {
            let cves: Vec<&str> = row["relatedCves"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if cves.is_empty() {
                "-".into()
            } else {
                cves.join(", ")
            }
        }
        "*percent" => match row["percentComplete"].as_f64() {
            Some(p) => format!("{p:.0}%"),
            None => "-".into(),
        },
        f => render(&row[f]),
    }
}

/// A value as a table cell: references by name and id, lists one per line, empty as `-`.
fn render(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Object(o) if o.contains_key("id") => match o.get("displayName") {
                    Some(Value::String(n)) => format!("{n} ({})", render(&o["id"])),
                    _ => render(&o["id"]),
                },
                Value::Object(o) if o.len() == 1 => {
                    o.values().next().map(render).unwrap_or_default()
                }
                other => render(other),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(o) if o.is_empty() => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_keeps_the_api_key_order() {
        let body = br#"{"zeta":1,"alpha":{"b":[1,2],"a":null},"id":"x"}"#;
        let out = pretty(body).unwrap();
        let z = out.find("zeta").unwrap();
        let a = out.find("alpha").unwrap();
        let i = out.find("\"id\"").unwrap();
        assert!(z < a && a < i, "{out}");
        assert!(out.contains('\n'));
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, serde_json::from_slice::<Value>(body).unwrap());
        assert!(pretty(b"{\"a\":").is_err());
        assert!(pretty(b"{} trailing").is_err());
    }

    #[test]
    fn cells_read_well() {
        let job = json!({"managedInstanceGroups": [{"id": "g1", "displayName": "web"}],
            "managedInstances": [{"id": "i1"}], "percentComplete": 33.3});
        assert_eq!(cell(&job, "*targets"), "group web, i1");
        assert_eq!(cell(&job, "*percent"), "33%");
        assert_eq!(cell(&job, "missing"), "-");
        assert_eq!(
            render(&json!([{"id": "a", "displayName": "A"}, {"name": "pkg"}])),
            "A (a)\npkg"
        );
        assert_eq!(render(&json!({})), "-");
        assert_eq!(render(&json!(true)), "true");
        assert_eq!(render(&json!(""),), "-");
    }
}
