//! Tideline's forms, field types, validation and record ids. Pure: no I/O, so the same
//! rules run on a boat, at a station and at HQ.
//!
//! A form is JSON using XLSForm's type names; [`validate`] checks a record's `fields` map
//! against it and returns every violation with the path of the offending value.
//!
//! ```
//! use serde_json::json;
//! use tideline_schemas::{validate, Form, ViolationKind};
//!
//! let form = Form::parse(r#"{
//!     "id": "catch-check",
//!     "version": 1,
//!     "title": "Catch check",
//!     "fields": [
//!         {"name": "vessel_name", "label": "Vessel name", "type": "text", "required": true},
//!         {"name": "position", "label": "Position", "type": "geopoint"},
//!         {"name": "catch_kg", "label": "Catch (kg)", "type": "decimal",
//!          "constraint": {"min": 0}}
//!     ]
//! }"#)?;
//!
//! let record = json!({"position": {"lat": 95.0, "lon": -61.2}, "catch_kg": 120.5});
//! let violations = validate(&form, record.as_object().unwrap());
//!
//! let found: Vec<_> = violations.iter().map(|v| (v.path.as_str(), v.kind)).collect();
//! assert_eq!(found, [
//!     ("vessel_name", ViolationKind::Missing),
//!     ("position.lat", ViolationKind::Constraint),
//! ]);
//! assert_eq!(violations[1].message, "Latitude must be between -90 and 90.");
//! // A draft may be incomplete but not wrong:
//! assert!(!violations[0].blocks_draft());
//! assert!(violations[1].blocks_draft());
//! # Ok::<(), tideline_schemas::FormError>(())
//! ```

#![forbid(unsafe_code)]

pub mod builtin;
mod check;
pub mod expr;
pub mod form;
pub mod id;
mod logic;
pub mod registry;
pub mod samples;
pub mod submission;
pub mod validate;
pub mod xform;
pub mod xlsform;

pub use builtin::builtin_forms;
pub use expr::{Expr, ExprError};
pub use form::{Check, Choice, Constraint, Field, FieldType, Form, FormError};
pub use id::{InvalidRecordId, RecordId};
pub use logic::clear_irrelevant;
pub use registry::FormRegistry;
pub use validate::{validate, validate_at, Violation, ViolationKind};
