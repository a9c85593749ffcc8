//! A small command-line parser for the examples: `--name value` and
//! `--flag`. Unknown flags, missing values and values that do not parse end
//! the program with status 2 and a message naming the flag.
// Each example uses a part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::str::FromStr;

/// One accepted flag: its name, whether it takes a value, and its help.
pub struct Flag {
    pub name: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

pub const fn flag(name: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        value: None,
        help,
    }
}

pub const fn opt(name: &'static str, value: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        value: Some(value),
        help,
    }
}

pub struct Args {
    given: HashMap<&'static str, Option<String>>,
}

impl Args {
    /// Parses the process arguments against `flags`; `--help` prints them.
    pub fn parse(about: &str, flags: &[Flag]) -> Args {
        let mut given = HashMap::new();
        let mut args = std::env::args_os().skip(1).enumerate().map(|(i, arg)| {
            arg.into_string()
                .unwrap_or_else(|_| fail(&format!("argument {} is not valid UTF-8", i + 1)))
        });
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                println!("{about}\n\nOptions:");
                for f in flags {
                    let left = format!("{} {}", f.name, f.value.unwrap_or(""));
                    println!("  {left:<28} {}", f.help);
                }
                std::process::exit(0);
            }
            let Some(f) = flags.iter().find(|f| f.name == arg) else {
                fail(&format!("unknown option {arg} (see --help)"));
            };
            let value = match f.value {
                Some(what) => match args.next() {
                    Some(v) => Some(v),
                    None => fail(&format!("{} needs a value: {what}", f.name)),
                },
                None => None,
            };
            given.insert(f.name, value);
        }
        Args { given }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    pub fn opt(&self, name: &str) -> Option<String> {
        self.given.get(name).cloned().flatten()
    }

    /// The flag's value parsed as `T`, or `default` when absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.opt(name) {
            None => default,
            Some(raw) => raw
                .parse()
                .unwrap_or_else(|_| fail(&format!("invalid {name} {raw:?}"))),
        }
    }
}

pub fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
