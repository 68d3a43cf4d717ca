//! Quiet hours: the check of a user's window, and whether a moment falls
//! inside it (live frames then carry `"silent": true`).

use herald_protocol::QuietHours;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::{CoreError, Result};

/// A checked window: its zone and its two times of day.
#[derive(Debug, Clone)]
pub struct QuietWindow {
    tz: TimeZone,
    start: Time,
    end: Time,
}

impl QuietWindow {
    /// Checks `hours`: an IANA zone jiff knows, `start` and `end` as
    /// `HH:MM` (00:00 to 23:59). Errors name the field.
    pub fn parse(hours: &QuietHours) -> Result<QuietWindow> {
        let tz = TimeZone::get(&hours.tz).map_err(|_| {
            CoreError::Invalid(format!(
                "quiet_hours.tz: {:?} is not an IANA time zone (e.g. Europe/Paris)",
                hours.tz
            ))
        })?;
        Ok(QuietWindow {
            tz,
            start: hh_mm("quiet_hours.start", &hours.start)?,
            end: hh_mm("quiet_hours.end", &hours.end)?,
        })
    }

    /// Whether now is inside the window.
    pub fn contains_now(&self) -> bool {
        self.contains(Timestamp::now())
    }

    /// Whether `at` is inside the window, in the window's zone. The window
    /// is `[start, end)`; when `end` is before `start` it crosses midnight
    /// (`22:00`–`07:00`); `start == end` is empty (never quiet).
    pub fn contains(&self, at: Timestamp) -> bool {
        let now = self.tz.to_datetime(at).time();
        if self.start <= self.end {
            self.start <= now && now < self.end
        } else {
            now >= self.start || now < self.end
        }
    }

    /// The window's next end after `at` (its end today in the window's
    /// zone, or tomorrow's if that passed): where a webhook held back by
    /// the quiet hours goes out.
    pub fn end_after(&self, at: Timestamp) -> Timestamp {
        let today = self.tz.to_datetime(at).date();
        for day in [Ok(today), today.tomorrow()].into_iter().flatten() {
            let end = self.tz.to_ambiguous_timestamp(day.to_datetime(self.end));
            if let Ok(end) = end.compatible() {
                if end > at {
                    return end;
                }
            }
        }
        at
    }
}

/// `HH:MM`, two digits each.
fn hh_mm(field: &str, value: &str) -> Result<Time> {
    let bad = || CoreError::Invalid(format!("{field}: {value:?} is not a time HH:MM"));
    let b = value.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
    {
        return Err(bad());
    }
    let hour: i8 = value[..2].parse().map_err(|_| bad())?;
    let minute: i8 = value[3..].parse().map_err(|_| bad())?;
    Time::new(hour, minute, 0, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(tz: &str, start: &str, end: &str) -> Result<QuietWindow> {
        QuietWindow::parse(&QuietHours {
            tz: tz.into(),
            start: start.into(),
            end: end.into(),
        })
    }

    fn at(utc: &str) -> Timestamp {
        utc.parse().unwrap()
    }

    #[test]
    fn a_window_may_cross_midnight_in_its_zone() {
        let night = window("Europe/Paris", "22:00", "07:00").unwrap();
        // Paris is UTC+1 in January.
        assert!(night.contains(at("2026-01-10T21:30:00Z")));
        assert!(night.contains(at("2026-01-10T05:59:00Z")));
        assert!(!night.contains(at("2026-01-10T06:00:00Z")));
        assert!(!night.contains(at("2026-01-10T20:59:00Z")));
        let day = window("UTC", "09:00", "17:00").unwrap();
        assert!(day.contains(at("2026-01-10T09:00:00Z")));
        assert!(!day.contains(at("2026-01-10T17:00:00Z")));
        let empty = window("UTC", "10:00", "10:00").unwrap();
        assert!(!empty.contains(at("2026-01-10T10:00:00Z")));
    }

    #[test]
    fn a_window_ends_today_or_tomorrow_in_its_zone() {
        let night = window("Europe/Paris", "22:00", "07:00").unwrap();
        // 23:30 in Paris: tomorrow 07:00 Paris = 06:00 UTC.
        assert_eq!(
            night.end_after(at("2026-01-10T22:30:00Z")),
            at("2026-01-11T06:00:00Z")
        );
        // 05:00 in Paris: today 07:00.
        assert_eq!(
            night.end_after(at("2026-01-10T04:00:00Z")),
            at("2026-01-10T06:00:00Z")
        );
    }

    #[test]
    fn bad_zones_and_times_name_their_field() {
        for (tz, start, end, field) in [
            ("Mars/Olympus", "22:00", "07:00", "quiet_hours.tz"),
            ("UTC", "24:00", "07:00", "quiet_hours.start"),
            ("UTC", "22:00", "7:00", "quiet_hours.end"),
            ("UTC", "22:00", "07:60", "quiet_hours.end"),
            ("UTC", "+2:00", "07:00", "quiet_hours.start"),
        ] {
            let err = window(tz, start, end).unwrap_err().to_string();
            assert!(err.contains(field), "{tz} {start} {end}: {err}");
        }
    }
}
