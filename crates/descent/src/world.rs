//! The processes of a data-parallel job: which one this is, how many there are, and the few
//! collective operations training needs (a sum, a gather, a broadcast), on MPI.
//!
//! A launcher (`mpirun`, Slurm's `srun`) starts the same command as several processes; each
//! calls [`join`] first thing, which opens MPI (cargo feature `mpi`, rsmpi over the system's MPI)
//! and makes [`World::current`] the job's world. Without a launcher, or with one process, the
//! world is a world of one, every operation is the identity, and nothing about a run changes.
//!
//! MPI is process-wide: one world per process, its calls made from one thread at a time (a lock
//! here serialises them). Training calls it from the thread that trains; batch norm's
//! synchronised statistics call it from inside the forward and backward passes, which run on
//! that same thread.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The environment variables a launcher sets in every process it starts: the number of
/// processes and this one's rank, by launcher (Open MPI's `mpirun`, MPICH's Hydra and PMI, Slurm).
/// Slurm's are the job step's, which `srun` sets: a batch script's own process (`sbatch
/// --ntasks 4`, then `descent` without `srun`) has `SLURM_NTASKS` but is one process.
const LAUNCHERS: [(&str, &str, &str); 3] = [
    ("mpirun (Open MPI)", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("mpiexec (PMI)", "PMI_SIZE", "PMI_RANK"),
    ("srun (Slurm)", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID"),
];

/// What a launcher says about the process it started, from its environment variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launched {
    /// The launcher, for messages (`mpirun (Open MPI)`).
    pub launcher: &'static str,
    /// Processes in the job.
    pub size: usize,
    /// This process's rank.
    pub rank: usize,
}

/// The launcher that started this process, if one did (its variables are set and read as
/// numbers).
pub fn launched() -> Option<Launched> {
    LAUNCHERS.iter().find_map(|&(launcher, size, rank)| {
        let size = std::env::var(size).ok()?.trim().parse().ok()?;
        let rank = std::env::var(rank).ok()?.trim().parse().ok()?;
        Some(Launched { launcher, size, rank })
    })
}

/// Whether MPI is compiled in (cargo feature `mpi`).
pub const COMPILED: bool = cfg!(feature = "mpi");

/// The MPI library descent is built against, as it names itself (its first line), when MPI is
/// compiled in.
pub fn library() -> Option<String> {
    #[cfg(feature = "mpi")]
    {
        let version = mpi::environment::library_version().ok()?;
        // "Open MPI v4.1.4, package: Debian OpenMPI, ident: ...": the name and version.
        return Some(version.split([',', '\n']).next().unwrap_or_default().trim().to_string());
    }
    #[allow(unreachable_code)]
    None
}

/// What `descent devices` says about MPI: compiled in or not, and under a launcher, the job's
/// size and this process's rank.
pub fn describe(world: &World) -> String {
    let compiled = match library() {
        Some(library) => format!("compiled in ({library})"),
        None if COMPILED => "compiled in".to_string(),
        None => "not compiled in (rebuild with `--features mpi` to train across processes and machines)"
            .to_string(),
    };
    match launched() {
        Some(launched) => format!(
            "{compiled}; started by {} as rank {} of {}",
            launched.launcher,
            world.rank(),
            world.size().max(launched.size)
        ),
        None => format!("{compiled}; not started by a launcher (mpirun, srun): one process"),
    }
}

/// Why the job's world cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// A launcher started several processes, but MPI is not compiled in: each would train alone
    /// and all would write the same run folder.
    #[error(
        "{launcher} started {size} processes, but this descent was built without MPI, so each would train alone: rebuild with `cargo build --release --features mpi` (on Debian, `apt-get install openmpi-bin libopenmpi-dev libclang-dev` first), or start one process"
    )]
    NotCompiled {
        /// The launcher.
        launcher: &'static str,
        /// The processes it started.
        size: usize,
    },
    /// MPI could not be initialised.
    #[error("MPI could not be initialised under {launcher} ({message})")]
    Init {
        /// The launcher.
        launcher: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// This process's time in collective operations (nanoseconds), the bytes it sent into them, and
/// how many it made.
static TRAFFIC: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// What this process has spent in the job's collective operations so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Seconds inside them, waiting for the other processes included.
    pub seconds: f64,
    /// Bytes this process contributed to them.
    pub bytes: u64,
    /// How many it made.
    pub calls: u64,
}

/// This process's [`Traffic`] since it started (zero in a world of one).
pub fn traffic() -> Traffic {
    let [nanos, bytes, calls] = &TRAFFIC;
    Traffic {
        seconds: nanos.load(Ordering::Relaxed) as f64 * 1e-9,
        bytes: bytes.load(Ordering::Relaxed),
        calls: calls.load(Ordering::Relaxed),
    }
}

/// Count a collective operation of `bytes` that began at `start`.
fn counted<T>(bytes: usize, call: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let result = call();
    let [nanos, sent, calls] = &TRAFFIC;
    nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    sent.fetch_add(bytes as u64, Ordering::Relaxed);
    calls.fetch_add(1, Ordering::Relaxed);
    result
}

/// The job's world, once [`join`] has opened it.
static JOINED: OnceLock<World> = OnceLock::new();

/// Open the job's world when a launcher started this process (MPI's initialisation), and make
/// it [`World::current`]. Without a launcher, or with one process, the world is a world of one
/// and MPI is not touched. Call it once, first thing, from the main thread; [`finish`] closes it.
pub fn join() -> Result<World, WorldError> {
    if let Some(world) = JOINED.get() {
        return Ok(world.clone());
    }
    let world = match launched() {
        Some(launched) if launched.size > 1 => open(&launched)?,
        _ => World::single(),
    };
    Ok(JOINED.get_or_init(|| world).clone())
}

/// Close MPI after a job that went well (every process calls it, as MPI's finalisation waits for
/// all). A process that fails exits without it: the launcher then ends the job on every rank.
pub fn finish() {
    #[cfg(feature = "mpi")]
    mpi_link::finalize();
}

#[cfg(not(feature = "mpi"))]
fn open(launched: &Launched) -> Result<World, WorldError> {
    Err(WorldError::NotCompiled { launcher: launched.launcher, size: launched.size })
}

#[cfg(feature = "mpi")]
fn open(launched: &Launched) -> Result<World, WorldError> {
    let link = mpi_link::Link::open()
        .map_err(|message| WorldError::Init { launcher: launched.launcher, message })?;
    let (rank, size) = link.rank_and_size();
    Ok(World { rank, size, link: Some(Arc::new(link)) })
}

/// The processes of a job, as one of them sees them. Cheap to clone; a world of one
/// ([`World::single`]) does every operation in place without communicating.
#[derive(Clone)]
pub struct World {
    rank: usize,
    size: usize,
    link: Option<Arc<Link>>,
}

#[cfg(feature = "mpi")]
type Link = mpi_link::Link;

/// Without MPI there is no link: only the world of one exists.
#[cfg(not(feature = "mpi"))]
enum Link {}

#[cfg(not(feature = "mpi"))]
impl Link {
    fn sum_f32(&self, _: &mut [f32]) {
        match *self {}
    }

    fn sum_f64(&self, _: &mut [f64]) {
        match *self {}
    }

    fn gather(&self, _: u64) -> Vec<u64> {
        match *self {}
    }

    fn broadcast(&self, _: usize, _: Vec<u8>) -> Vec<u8> {
        match *self {}
    }
}

impl Default for World {
    fn default() -> Self {
        Self::single()
    }
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "World {{ rank: {}, size: {} }}", self.rank, self.size)
    }
}

impl PartialEq for World {
    fn eq(&self, other: &Self) -> bool {
        (self.rank, self.size) == (other.rank, other.size)
    }
}

impl World {
    /// A world of this process alone.
    pub fn single() -> Self {
        Self { rank: 0, size: 1, link: None }
    }

    /// The job's world: the one [`join`] opened, or a world of one.
    pub fn current() -> Self {
        JOINED.get().cloned().unwrap_or_default()
    }

    /// This process's rank, 0 to `size - 1`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Processes in the job.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether other processes take part.
    pub fn is_parallel(&self) -> bool {
        self.size > 1
    }

    /// Whether this is rank 0, the process that writes and prints.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// This process's rows of `rows` ([`shares`] by rank); `None` when there are fewer rows
    /// than processes and none is left for it.
    pub fn share(&self, rows: usize) -> Option<Range<usize>> {
        shares(rows, self.size).get(self.rank).cloned()
    }

    /// Every process's `values`, summed element by element, in place.
    pub fn sum_f32(&self, values: &mut [f32]) {
        if let Some(link) = self.link() {
            counted(std::mem::size_of_val(values), || link.sum_f32(values));
        }
    }

    /// Every process's `values`, summed element by element, in place.
    pub fn sum_f64(&self, values: &mut [f64]) {
        if let Some(link) = self.link() {
            counted(std::mem::size_of_val(values), || link.sum_f64(values));
        }
    }

    /// Whether `flag` is true on any process.
    pub fn any(&self, flag: bool) -> bool {
        let mut count = [f64::from(u8::from(flag))];
        self.sum_f64(&mut count);
        count[0] > 0.0
    }

    /// Every process's `value`, by rank.
    pub fn gather(&self, value: u64) -> Vec<u64> {
        match self.link() {
            Some(link) => counted(8, || link.gather(value)),
            None => vec![value],
        }
    }

    /// Rank 0's bytes, on every process (`bytes` is read on rank 0 only).
    pub fn broadcast(&self, bytes: Vec<u8>) -> Vec<u8> {
        self.broadcast_from(0, bytes)
    }

    /// Rank `root`'s bytes, on every process (`bytes` is read on `root` only).
    pub fn broadcast_from(&self, root: usize, bytes: Vec<u8>) -> Vec<u8> {
        match self.link() {
            Some(link) => counted(bytes.len(), || link.broadcast(root, bytes)),
            None => bytes,
        }
    }

    /// Every process's bytes, by rank, on every process (of any lengths).
    pub fn gather_bytes(&self, bytes: Vec<u8>) -> Vec<Vec<u8>> {
        if !self.is_parallel() {
            return vec![bytes];
        }
        let mut mine = Some(bytes);
        (0..self.size)
            .map(|root| {
                let sent = if root == self.rank { mine.take().unwrap_or_default() } else { Vec::new() };
                self.broadcast_from(root, sent)
            })
            .collect()
    }

    /// Rank 0's `flag`, on every process.
    pub fn root_says(&self, flag: bool) -> bool {
        self.broadcast(vec![u8::from(flag)]).first() == Some(&1)
    }

    fn link(&self) -> Option<&Link> {
        self.link.as_deref().filter(|_| self.size > 1)
    }
}

/// Contiguous row ranges, one per part (a process of a job, a device of a process), as equal as
/// possible (the first ones one row longer); fewer ranges than parts when there are fewer rows.
pub fn shares(rows: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.min(rows).max(1);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = rows / parts + usize::from(i < rows % parts);
            start += len;
            start - len..start
        })
        .collect()
}

/// The first rank whose `value` differs from rank 0's, with both values.
pub fn first_difference(values: &[u64]) -> Option<(usize, u64, u64)> {
    let root = *values.first()?;
    values.iter().position(|&v| v != root).map(|rank| (rank, root, values[rank]))
}

/// A 64-bit FNV-1a hash of `bytes`: what the ranks compare to find that they disagree (and what
/// a checkpoint's checksum is).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(feature = "mpi")]
mod mpi_link {
    //! The world on rsmpi: `MPI_COMM_WORLD` behind a lock, so that calls are serialised.

    use std::sync::Mutex;

    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;

    /// The MPI environment, finalised when it is dropped ([`finalize`]).
    static UNIVERSE: Mutex<Option<Held<Universe>>> = Mutex::new(None);

    /// An MPI handle moved between threads: MPI is initialised with `MPI_THREAD_SERIALIZED`
    /// (or better), so any thread may call it as long as no two do at once, which the locks
    /// here ensure.
    struct Held<T>(T);
    // SAFETY: see `Held`: every use goes through a `Mutex`, and MPI allows calls from any
    // thread at the serialised threading level that `Link::open` checks.
    unsafe impl<T> Send for Held<T> {}

    /// `MPI_COMM_WORLD`, one call at a time.
    pub struct Link {
        world: Mutex<Held<SimpleCommunicator>>,
    }

    impl Link {
        pub fn open() -> Result<Self, String> {
            let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
                .ok_or_else(|| "MPI was initialised already".to_string())?;
            if matches!(threading, mpi::Threading::Single | mpi::Threading::Funneled) {
                return Err(format!(
                    "the MPI library offers threading level {threading:?}; descent needs Serialized"
                ));
            }
            let world = universe.world();
            *UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Held(universe));
            Ok(Self { world: Mutex::new(Held(world)) })
        }

        fn with<T>(&self, call: impl FnOnce(&SimpleCommunicator) -> T) -> T {
            let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
            call(&world.0)
        }

        pub fn rank_and_size(&self) -> (usize, usize) {
            self.with(|world| (world.rank() as usize, world.size() as usize))
        }

        pub fn sum_f32(&self, values: &mut [f32]) {
            let send = values.to_vec();
            self.with(|world| world.all_reduce_into(&send[..], values, SystemOperation::sum()));
        }

        pub fn sum_f64(&self, values: &mut [f64]) {
            let send = values.to_vec();
            self.with(|world| world.all_reduce_into(&send[..], values, SystemOperation::sum()));
        }

        pub fn gather(&self, value: u64) -> Vec<u64> {
            self.with(|world| {
                let mut all = vec![0u64; world.size() as usize];
                world.all_gather_into(&value, &mut all[..]);
                all
            })
        }

        pub fn broadcast(&self, from: usize, bytes: Vec<u8>) -> Vec<u8> {
            self.with(|world| {
                let root = world.process_at_rank(from as i32);
                let mut length = [bytes.len() as u64];
                root.broadcast_into(&mut length[..]);
                let mut bytes =
                    if world.rank() as usize == from { bytes } else { vec![0u8; length[0] as usize] };
                // MPI counts are 32-bit: large payloads go in pieces.
                for piece in bytes.chunks_mut(1 << 30) {
                    root.broadcast_into(piece);
                }
                bytes
            })
        }
    }

    /// Finalise MPI (drop the universe), once.
    pub fn finalize() {
        let universe = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(universe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_of_one_keeps_every_value() {
        let world = World::single();
        let mut values = [1.5f32, -2.0];
        world.sum_f32(&mut values);
        assert_eq!(values, [1.5, -2.0]);
        assert!(world.any(true) && !world.any(false));
        assert_eq!(world.gather(7), vec![7]);
        assert_eq!(world.broadcast(vec![1, 2, 3]), vec![1, 2, 3]);
        assert_eq!(world.gather_bytes(vec![4, 5]), vec![vec![4, 5]]);
        assert!(world.root_says(true) && !world.root_says(false));
        assert!(world.is_root() && !world.is_parallel());
    }

    #[test]
    fn shares_cover_every_row_once_and_differ_by_at_most_one() {
        for rows in 1..40 {
            for parts in 1..6 {
                let ranges = shares(rows, parts);
                assert_eq!(ranges.len(), parts.min(rows));
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges.last().unwrap().end, rows);
                assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
                let lens: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1);
                assert!(lens.iter().all(|&len| len > 0));
            }
        }
    }

    #[test]
    fn the_first_rank_that_differs_is_named() {
        assert_eq!(first_difference(&[5, 5, 5]), None);
        assert_eq!(first_difference(&[5, 5, 9, 8]), Some((2, 5, 9)));
        assert_ne!(fingerprint(b"seed = 1"), fingerprint(b"seed = 2"));
    }
}
