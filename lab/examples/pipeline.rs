//! The main job: the runbook's timeline, simulated, with the coverage it
//! gets (see the lab's `pipeline` module for the flags).
//!
//! ```text
//! cargo run --release --example pipeline
//! cargo run --release --example pipeline -- --plans 10000 --rate 2000 --json
//! cargo run --release --example pipeline -- --chaos --rate 5000 --seconds 60 --detect push
//! cargo run --release --features cluster --example pipeline -- --chaos --cluster --seconds 60
//! ```

fn main() {
    heat_observer_lab::pipeline::main();
}
