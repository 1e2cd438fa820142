//! Reports: renderings of a finished run for people and CI — siege's text
//! summary and stormproof's extras for the terminal, JSON (with a schema,
//! `schema.json`), JUnit XML (one test case per threshold), a Markdown
//! summary for CI step summaries and a self-contained HTML page with SVG
//! charts. Writers only read a [`crate::load::LoadSummary`] and the
//! threshold results; the load engine (and later the chaos engine) hands
//! them over and never formats anything itself. Experiment runs are rendered
//! from their journal ([`crate::chaos::Journal`]), the checkpoint scorecard
//! from [`crate::check::Scorecard`] (its JSON has `scorecard.schema.json`);
//! JUnit for load, experiments and contracts comes from one writer; the
//! scorecard is also one HTML page linking the experiments' own reports.

mod experiment;
mod html;
mod json;
mod junit;
mod markdown;
mod scorecard;
mod scorecard_html;
mod text;
mod util;
mod write;

pub use experiment::{experiment_html, experiment_markdown, write_experiment_reports};
pub use html::html_report;
pub use json::{JSON_SCHEMA, SCHEMA_VERSION, json_value};
pub use junit::{experiment_junit, junit_xml, verification_junit};
pub use markdown::markdown_summary;
pub use scorecard::{SCORECARD_SCHEMA, scorecard_markdown, scorecard_table};
pub use scorecard_html::{Link, scorecard_html, scorecard_links, write_scorecard_html};
pub use text::{extras_text, siege_text, thresholds_text};
pub use util::utc_datetime;
pub use write::write_reports;
