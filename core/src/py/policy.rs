//! The end-of-capture decisions the core leaves to pcapdns/policy.py (`settle`): a lookup
//! that `needs_policy` goes to it as a Python record, and what it decided comes back to the
//! core's counters and tallies.

use pyo3::intern;
use pyo3::prelude::*;

use crate::matcher::{Lookup, Settlement};

use super::convert::Classes;

/// pcapdns.policy.settle and the AnalysisConfig it decides with.
pub struct Policy {
    settle: Py<PyAny>,
    config: Py<PyAny>,
}

impl Policy {
    pub fn new(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Policy> {
        Ok(Policy {
            settle: py.import("pcapdns.policy")?.getattr("settle")?.unbind(),
            config: config.clone().unbind(),
        })
    }

    /// `lookup` (one that `needs_policy`) as the Python record the policy settled, and
    /// the decisions to give the core.
    pub fn apply(
        &self,
        py: Python<'_>,
        classes: &mut Classes,
        lookup: &Lookup,
    ) -> PyResult<(Py<PyAny>, Settlement)> {
        let raw = classes.lookup(py, lookup)?;
        let settled = self.settle.call1(py, (raw, self.config.clone_ref(py)))?;
        let obj = settled.bind(py);
        let open_at_end = obj.getattr(intern!(py, "open_at_end"))?.is_truthy()?;
        let attempts = obj.getattr(intern!(py, "attempts"))?;
        let mut races_undone = Vec::new();
        for (i, t) in lookup.attempts.iter().enumerate() {
            if t.pair_race_lost {
                let kept = attempts
                    .get_item(i)?
                    .getattr(intern!(py, "pair_race_lost"))?
                    .is_truthy()?;
                if !kept {
                    races_undone.push(i);
                }
            }
        }
        Ok((
            settled,
            Settlement {
                open_at_end,
                races_undone,
            },
        ))
    }
}
