//! Ledger totals, computed the same way by every backend: rows in, exact sums per group out.

use std::collections::BTreeMap;

use exllm_core::{Cost, Decimal, Error, GroupBy, Result, Usage, UsageQuery, UsageTotal};

/// The group key of records without a caller when totals are grouped by caller.
pub const NO_CALLER: &str = "(none)";

/// One record as far as totals care.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TotalsRow<'a> {
    pub at_ms: u64,
    pub provider: &'a str,
    pub model: &'a str,
    pub caller: Option<&'a str>,
    pub usage: Usage,
    /// The record's total cost; `None` when unpriced.
    pub cost_usd: Option<Decimal>,
    pub is_error: bool,
}

/// Running totals per group, sorted by key.
#[derive(Debug)]
pub(crate) struct Totals {
    group_by: GroupBy,
    groups: BTreeMap<String, UsageTotal>,
}

impl Totals {
    pub fn new(group_by: GroupBy) -> Self {
        Self {
            group_by,
            groups: BTreeMap::new(),
        }
    }

    /// Adds one record (already filtered by the query) to its group.
    pub fn add(&mut self, row: TotalsRow<'_>) -> Result<()> {
        let key = match self.group_by {
            GroupBy::Provider => row.provider.to_owned(),
            GroupBy::Model => format!("{}/{}", row.provider, row.model),
            GroupBy::Day => utc_day(row.at_ms),
            GroupBy::Caller => row.caller.unwrap_or(NO_CALLER).to_owned(),
        };
        let total = self.groups.entry(key).or_insert_with_key(|key| UsageTotal {
            key: key.clone(),
            ..UsageTotal::default()
        });
        total.calls = total.calls.saturating_add(1);
        if row.is_error {
            total.errors = total.errors.saturating_add(1);
        }
        total.usage.add(&row.usage);
        match row.cost_usd {
            Some(cost) => total.cost_usd = checked_sum(total.cost_usd, cost)?,
            None => total.unpriced = total.unpriced.saturating_add(1),
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<UsageTotal> {
        self.groups.into_values().collect()
    }
}

/// Whether a record at `at_ms` by `caller` is covered by `query` (the in-memory filter; the
/// SQL backends say the same in their `WHERE`).
pub(crate) fn covers(query: &UsageQuery, at_ms: u64, caller: Option<&str>) -> bool {
    query.since_ms.is_none_or(|since| at_ms >= since)
        && query.until_ms.is_none_or(|until| at_ms < until)
        && query.caller.as_deref().is_none_or(|c| caller == Some(c))
}

/// `a + b`, or an error instead of the overflow panic of `Decimal`'s `+`.
pub(crate) fn checked_sum(a: Decimal, b: Decimal) -> Result<Decimal> {
    a.checked_add(b).ok_or_else(|| {
        Error::validation(
            "cost",
            format!("a cost sum ({a} + {b}) exceeds the range of an exact decimal"),
        )
    })
}

/// Adds `cost` to a running total, field by field, exactly.
pub(crate) fn add_cost(total: &mut Option<Cost>, cost: &Cost) -> Result<()> {
    let sum = total.get_or_insert_with(Cost::default);
    *sum = Cost {
        total_usd: checked_sum(sum.total_usd, cost.total_usd)?,
        input_usd: checked_sum(sum.input_usd, cost.input_usd)?,
        cached_input_usd: checked_sum(sum.cached_input_usd, cost.cached_input_usd)?,
        cache_write_usd: checked_sum(sum.cache_write_usd, cost.cache_write_usd)?,
        output_usd: checked_sum(sum.output_usd, cost.output_usd)?,
        reasoning_usd: checked_sum(sum.reasoning_usd, cost.reasoning_usd)?,
    };
    Ok(())
}

/// The UTC day (`YYYY-MM-DD`) of a time in milliseconds since the epoch.
pub(crate) fn utc_day(at_ms: u64) -> String {
    let days = i64::try_from(at_ms / 86_400_000).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day count since
/// 1970-01-01 (exact for every day a `u64` of milliseconds can name).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small and positive by construction.
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
