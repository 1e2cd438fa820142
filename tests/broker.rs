//! The embedded broker (nisshi 0.8 with SQLite) as its own process, against
//! real rdkafka clients: tansu 0.6's three defects are gone (`defects`), and
//! each broker fault shows while set and is gone once cleared (`faults`).

#[path = "broker/defects.rs"]
mod defects;
#[path = "broker/faults.rs"]
mod faults;
#[path = "broker/harness.rs"]
mod harness;
