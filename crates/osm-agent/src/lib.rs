//! osm-agent: runs on each managed host, enrols with osmd using an install key, reports the
//! host's facts and package inventory, and carries out work requests through apt or dnf.

pub mod agent;
pub mod backend;
pub mod backoff;
pub mod config;
pub mod facts;
pub mod inventory;
pub mod ledger;
pub mod runner;
pub mod spec;
pub mod state;
