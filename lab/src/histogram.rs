//! The picture operators choose `P28_LATE_OBS_MAX_WAIT_MS` from: how long
//! found keys took (`wait_ms`, in bins up to the deadline), the deadline,
//! and beside it the keys that came after it (when the simulator knows
//! when they came; the coverage report only knows that they came) and the
//! plans that never got one. Drawn in the terminal, and as an SVG file
//! (plotters) on request.
// Each example uses a part of this module.
#![allow(dead_code)]

use plotters::prelude::*;

/// Bins up to the deadline (and as many again after it, for late keys).
const BINS: u64 = 20;

/// The distribution of one observation point's waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitHistogram {
    pub point: String,
    pub deadline_ms: u64,
    pub bin_ms: u64,
    /// Found keys per bin of `wait_ms`, from 0 to the deadline.
    pub found: Vec<u64>,
    /// Keys that came after the deadline, per bin after it (the last bin
    /// holds everything later), when their time is known.
    pub late: Vec<u64>,
    /// Keys that came after the deadline, at a time not known.
    pub late_unknown: u64,
    /// Plans that never got a key.
    pub never: u64,
}

impl WaitHistogram {
    /// `found_ms`: the waits of found keys; `late_ms`: for keys that came
    /// after the deadline, when they came (from the call).
    pub fn new(
        point: &str,
        deadline_ms: u64,
        found_ms: impl IntoIterator<Item = u64>,
        late_ms: impl IntoIterator<Item = u64>,
        late_unknown: u64,
        never: u64,
    ) -> Self {
        let bin_ms = (deadline_ms / BINS).max(1);
        let bins = deadline_ms.div_ceil(bin_ms).max(1) as usize;
        let mut found = vec![0; bins];
        for ms in found_ms {
            // A look answered a little after the deadline still counts in
            // the last bin before it (its event says found).
            found[((ms / bin_ms) as usize).min(bins - 1)] += 1;
        }
        let mut late = vec![0; bins];
        for ms in late_ms {
            let after = ms.saturating_sub(deadline_ms) / bin_ms;
            late[(after as usize).min(bins - 1)] += 1;
        }
        WaitHistogram {
            point: point.to_owned(),
            deadline_ms,
            bin_ms,
            found,
            late,
            late_unknown,
            never,
        }
    }

    fn most(&self) -> u64 {
        let late_total: u64 = self.late.iter().sum::<u64>() + self.late_unknown;
        self.found
            .iter()
            .chain(&self.late)
            .copied()
            .chain([late_total, self.never])
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// The histogram as text: a bar per bin, the deadline marked, then the
    /// keys that came late and the plans that never got one.
    pub fn terminal(&self, width: usize) -> String {
        let most = self.most();
        let bar = |n: u64| "#".repeat(((n * width as u64).div_ceil(most)) as usize);
        let mut out = format!(
            "wait_ms of {} ({} ms bins); the deadline is {} ms\n",
            self.point, self.bin_ms, self.deadline_ms
        );
        for (i, n) in self.found.iter().enumerate() {
            let from = i as u64 * self.bin_ms;
            out.push_str(&format!(
                "  {:>6}-{:<6} {:>7}  {}\n",
                from,
                from + self.bin_ms,
                n,
                bar(*n)
            ));
        }
        out.push_str(&format!(
            "  {:-^13} deadline {} ms: keys after it are misses {:-^5}\n",
            "", self.deadline_ms, ""
        ));
        let last = self.late.len().saturating_sub(1);
        for (i, n) in self.late.iter().enumerate().filter(|(_, n)| **n > 0) {
            let from = self.deadline_ms + i as u64 * self.bin_ms;
            let to = if i == last {
                "later".to_owned()
            } else {
                (from + self.bin_ms).to_string()
            };
            out.push_str(&format!(
                "  {from:>6}-{to:<6} {n:>7}  {} came late\n",
                bar(*n)
            ));
        }
        if self.late_unknown > 0 {
            out.push_str(&format!(
                "  {:<13} {:>7}  {} came late (when, not known)\n",
                "after",
                self.late_unknown,
                bar(self.late_unknown)
            ));
        }
        out.push_str(&format!(
            "  {:<13} {:>7}  {}\n",
            "never",
            self.never,
            bar(self.never)
        ));
        out
    }

    /// The histogram as an SVG file at `path`.
    pub fn svg(&self, path: &str) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("{path}: {e}");
        let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let bins = self.found.len() as u64;
        // Found bins, the late bins after the deadline, then two bars:
        // late at an unknown time, and never.
        let end = self.deadline_ms + bins * self.bin_ms + 2 * self.bin_ms;
        let most = self.most();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}: wait of found keys, the deadline ({} ms), what came late, what never came",
                    self.point, self.deadline_ms
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0u64..end, 0u64..most + most / 10 + 1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("ms from the call")
            .y_desc("plans")
            .disable_x_mesh()
            .draw()
            .map_err(|e| err(&e))?;
        let bar = |from: u64, n: u64, color: RGBColor| {
            Rectangle::new(
                [(from, 0), (from + self.bin_ms * 9 / 10, n)],
                color.filled(),
            )
        };
        let found = self
            .found
            .iter()
            .enumerate()
            .map(|(i, n)| bar(i as u64 * self.bin_ms, *n, RGBColor(46, 125, 50)));
        chart
            .draw_series(found)
            .map_err(|e| err(&e))?
            .label("found")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 10, y + 5)],
                    RGBColor(46, 125, 50).filled(),
                )
            });
        let late = self.late.iter().enumerate().map(|(i, n)| {
            bar(
                self.deadline_ms + i as u64 * self.bin_ms,
                *n,
                RGBColor(239, 108, 0),
            )
        });
        chart
            .draw_series(late)
            .map_err(|e| err(&e))?
            .label("came after the deadline")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 10, y + 5)],
                    RGBColor(239, 108, 0).filled(),
                )
            });
        let tail = self.deadline_ms + bins * self.bin_ms;
        let unknown = RGBColor(255, 183, 77);
        chart
            .draw_series([bar(tail, self.late_unknown, unknown)])
            .map_err(|e| err(&e))?
            .label("came after it, when not known")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], unknown.filled()));
        let never = RGBColor(158, 158, 158);
        chart
            .draw_series([bar(tail + self.bin_ms, self.never, never)])
            .map_err(|e| err(&e))?
            .label("never came (the last bar)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], never.filled()));
        chart
            .draw_series(LineSeries::new(
                [(self.deadline_ms, 0), (self.deadline_ms, most + most / 10)],
                RED.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(format!("deadline {} ms", self.deadline_ms))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fall_in_their_bins_and_late_keys_after_the_deadline() {
        let h = WaitHistogram::new(
            "publish_plan_post",
            2000,
            [0, 99, 100, 2005],
            [2050, 9000],
            3,
            4,
        );
        assert_eq!(h.bin_ms, 100);
        assert_eq!(&h.found[..2], &[2, 1]);
        assert_eq!(
            h.found[19], 1,
            "answered just after the deadline: the last bin"
        );
        assert_eq!((h.late[0], h.late[19]), (1, 1), "9 s late: the last bin");
        let text = h.terminal(20);
        assert!(text.contains("deadline 2000 ms"), "{text}");
        assert!(text.contains("came late (when, not known)"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("never") && l.contains(" 4 ")),
            "{text}"
        );
        let path = std::env::temp_dir().join(format!("heat-observer-{}.svg", std::process::id()));
        h.svg(path.to_str().unwrap()).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            svg.starts_with("<svg") && svg.contains("deadline 2000 ms"),
            "{}",
            &svg[..200]
        );
    }
}
