//! Board profiles: defaults for thresholds, intervals and budgets that fit a class of router.
//!
//! `board = ath79` (or `--board ath79`) replaces the built-in defaults of the keys in
//! [`Profile`]; keys set explicitly in the config file or by flags still win. The table is
//! printed in `board/README.md` (a test keeps the two equal).
//!
//! Why the figures differ:
//! * **busy %** is the whole box (all CPUs in `/proc/stat`). On one core that is the core itself,
//!   so the default bar holds. MT7621 shows 4 CPUs for 2 SMT cores: two pegged threads already
//!   fill both pipelines at 50 % shown, so its bar is lower. On IPQ40xx, ESP crypto runs in
//!   software in the softirq of one core, so one pegged core shows as 25 %; a lower bar catches
//!   the box saturating around it. Filogic chips have ARMv8 AES instructions: crypto is cheap.
//! * **PSI %** (`/proc/pressure/cpu` "some") means more on many cores: one waiting task stalls a
//!   single core, while four cores need five runnable tasks. Single core → higher bar.
//! * **Intervals**: the slow single-core ath79 samples every 2 s and polls charon every 60 s (a
//!   `list-sas` costs charon time on the same core); DPD give-ups take ≥ 30 s, so 2 s resolution
//!   still shows the load before them.
//! * **Budget** is a share of one core: a fast Filogic core does the same work in under half the
//!   time, so a tighter budget there still never throttles normal work. **nice** 5 on ath79 lets
//!   charon and the network go first on the only core.
//!
//! ```
//! use swandog::board::Board;
//!
//! let ath79 = Board::from_name("ath79").unwrap();
//! assert_eq!(ath79.profile().sample_interval_ms, 2_000);
//! assert_eq!(Board::None.profile(), Board::Generic.profile());
//! ```

/// A class of router, chosen with `board = NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// No profile: the built-in defaults (the same figures as `generic`).
    None,
    /// Unknown hardware, said explicitly: the built-in defaults.
    Generic,
    /// MediaTek MT7621 (mipsel 1004Kc, 2 cores × 880 MHz, 4 threads): Ubiquiti ER-X, many APs.
    Mt7621,
    /// Qualcomm Atheros ath79 (mips 24Kc/74Kc, 1 core × 650–775 MHz): TP-Link Archer C7 and kin.
    Ath79,
    /// Qualcomm IPQ40xx (armv7 Cortex-A7, 4 cores × 717 MHz): Fritz!Box 4040, GL.iNet B1300.
    Ipq40xx,
    /// MediaTek Filogic / MT7622 (aarch64 Cortex-A53/A73, 2–4 cores × 1.3–2.0 GHz): BPI-R3/R64.
    Filogic,
}

/// The defaults a board sets. Each field is the config key of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Whole-box busy % above which the box counts as loaded.
    pub busy_threshold_pct: u8,
    /// CPU pressure ("some", avg10) % above which the box counts as loaded.
    pub psi_threshold_pct: u8,
    /// How often `/proc/stat` is sampled, in milliseconds.
    pub sample_interval_ms: u32,
    /// How often `list-sas` reconciles, in seconds.
    pub poll_interval_s: u32,
    /// swandog's own CPU budget, in thousandths of one core.
    pub cpu_budget_permille: u16,
    /// Process niceness.
    pub nice: i8,
}

/// One row of the board table: what the board is, and its profile.
#[derive(Clone, Copy, Debug)]
pub struct BoardInfo {
    /// The board.
    pub board: Board,
    /// Its name in `board = NAME`.
    pub name: &'static str,
    /// Router class and examples.
    pub class: &'static str,
    /// SoC family and ISA.
    pub soc: &'static str,
    /// Cores × clock.
    pub cores: &'static str,
    /// The defaults it sets.
    pub profile: Profile,
}

/// The built-in defaults of the keys a profile covers (`none` and `generic`).
pub const GENERIC: Profile = Profile {
    busy_threshold_pct: 85,
    psi_threshold_pct: 40,
    sample_interval_ms: 1_000,
    poll_interval_s: 30,
    cpu_budget_permille: 5,
    nice: 0,
};

/// Every board, in the order the table lists them.
pub const BOARDS: [BoardInfo; 6] = [
    BoardInfo {
        board: Board::None,
        name: "none",
        class: "no profile (built-in defaults)",
        soc: "-",
        cores: "-",
        profile: GENERIC,
    },
    BoardInfo {
        board: Board::Generic,
        name: "generic",
        class: "unknown or x86 box",
        soc: "any",
        cores: "any",
        profile: GENERIC,
    },
    BoardInfo {
        board: Board::Mt7621,
        name: "mt7621",
        class: "mid-range router (ER-X, Netgear R6220)",
        soc: "MediaTek MT7621, mipsel 1004Kc",
        cores: "2 x 880 MHz (4 threads)",
        profile: Profile {
            busy_threshold_pct: 70,
            psi_threshold_pct: 35,
            ..GENERIC
        },
    },
    BoardInfo {
        board: Board::Ath79,
        name: "ath79",
        class: "older single-core router (Archer C7, WR1043ND)",
        soc: "Qualcomm Atheros ath79, mips 24Kc/74Kc",
        cores: "1 x 650-775 MHz",
        profile: Profile {
            busy_threshold_pct: 85,
            psi_threshold_pct: 50,
            sample_interval_ms: 2_000,
            poll_interval_s: 60,
            cpu_budget_permille: 5,
            nice: 5,
        },
    },
    BoardInfo {
        board: Board::Ipq40xx,
        name: "ipq40xx",
        class: "quad-core AP/router (Fritz!Box 4040, GL-B1300)",
        soc: "Qualcomm IPQ40xx, armv7 Cortex-A7",
        cores: "4 x 717 MHz",
        profile: Profile {
            busy_threshold_pct: 75,
            psi_threshold_pct: 30,
            ..GENERIC
        },
    },
    BoardInfo {
        board: Board::Filogic,
        name: "filogic",
        class: "current router (BPI-R3, BPI-R64, GL-MT6000)",
        soc: "MediaTek MT7622 / Filogic MT798x, aarch64 A53/A73",
        cores: "2-4 x 1.3-2.0 GHz",
        profile: Profile {
            busy_threshold_pct: 80,
            psi_threshold_pct: 35,
            cpu_budget_permille: 3,
            ..GENERIC
        },
    },
];

impl Board {
    /// Every board, in the order of [`BOARDS`].
    pub const ALL: [Board; BOARDS.len()] = {
        let mut all = [Board::None; BOARDS.len()];
        let mut i = 0;
        while i < BOARDS.len() {
            all[i] = BOARDS[i].board;
            i += 1;
        }
        all
    };

    /// This board's row in [`BOARDS`].
    pub fn info(self) -> &'static BoardInfo {
        // Every variant has exactly one row (tested).
        BOARDS
            .iter()
            .find(|row| row.board == self)
            .unwrap_or(&BOARDS[0])
    }

    /// The name in `board = NAME`.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The defaults this board sets.
    pub fn profile(self) -> Profile {
        self.info().profile
    }

    /// The board called `name`.
    pub fn from_name(name: &str) -> Option<Board> {
        BOARDS
            .iter()
            .find(|row| row.name == name)
            .map(|row| row.board)
    }
}

/// The Markdown table of [`BOARDS`] as `board/README.md` shows it.
pub fn markdown_table() -> String {
    use core::fmt::Write as _;
    let mut out = String::from(
        "| board | router class | SoC | cores x clock | busy_threshold_pct | psi_threshold_pct \
         | sample_interval_ms | poll_interval_s | cpu_budget_permille | nice |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in BOARDS {
        let p = row.profile;
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.class,
            row.soc,
            row.cores,
            p.busy_threshold_pct,
            p.psi_threshold_pct,
            p.sample_interval_ms,
            p.poll_interval_s,
            p.cpu_budget_permille,
            p.nice
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_has_one_row_and_its_name_round_trips() {
        for row in BOARDS {
            assert_eq!(BOARDS.iter().filter(|r| r.board == row.board).count(), 1);
            assert_eq!(Board::from_name(row.name), Some(row.board));
            assert_eq!(row.board.info().name, row.name);
        }
        assert_eq!(Board::from_name("MT7621"), None);
    }

    #[test]
    fn no_profile_and_generic_are_the_built_in_defaults() {
        assert_eq!(Board::None.profile(), GENERIC);
        assert_eq!(Board::Generic.profile(), GENERIC);
    }

    #[test]
    fn slow_single_core_board_samples_and_polls_less_often() {
        let slow = Board::Ath79.profile();
        for row in BOARDS {
            assert!(slow.sample_interval_ms >= row.profile.sample_interval_ms);
            assert!(slow.poll_interval_s >= row.profile.poll_interval_s);
        }
    }

    #[test]
    fn board_readme_shows_the_same_table() {
        let readme = include_str!("../board/README.md");
        assert!(
            readme.contains(&markdown_table()),
            "board/README.md is out of date; its table must be:\n{}",
            markdown_table()
        );
    }
}
