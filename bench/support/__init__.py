"""The benches' own support code: their stack instance, SIPp phones, customers, engine process, statistics
and pass flags. Nothing here (nor anywhere under bench/) imports `tests`: the lab's instruments shared with
the tests live in `lab/`."""
