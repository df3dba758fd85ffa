//! The promoted-leg table: the `legs`, `counters` and `stats` maps, and what a promotion
//! needs to know of the attached interfaces.
//!
//! [`FastPath`](crate::FastPath) owns the program and one table; [`LegTable::try_clone`]
//! gives another table over the same maps (duplicated map descriptors), so each data
//! plane worker promotes and demotes its own ports without a lock and the control plane
//! reads counters beside them. The kernel serialises map updates; two tables never
//! touch the same key because each worker owns its ports.

use std::os::fd::AsFd;

use aya::maps::{HashMap, IterableMap, Map, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};

use crate::maps::{addr_bytes, CpuCounters, LegValue, LEG_RTP, NO_USER_PT};
use crate::{iface, map_err, FastLeg, FastPathError, FastPathStats, LegCounters, LegKey, PortKind};

/// Promotes, demotes and reads legs of the fast path (see [`FastPath`](crate::FastPath)).
pub struct LegTable {
    legs: HashMap<MapData, LegKey, LegValue>,
    counters: PerCpuHashMap<MapData, LegKey, CpuCounters>,
    stats: PerCpuArray<MapData, u64>,
    /// Attached interfaces (name, ifindex): where forwarded packets may leave.
    attached: Vec<(String, u32)>,
    addresses: iface::Addresses,
    cpus: usize,
}

impl std::fmt::Debug for LegTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegTable")
            .field("attached", &self.attached)
            .field("cpus", &self.cpus)
            .finish_non_exhaustive()
    }
}

/// A second descriptor for `map`, typed as `T`.
pub(crate) fn dup<T>(map: &MapData, name: &'static str) -> Result<T, FastPathError>
where
    T: TryFrom<Map>,
    <T as TryFrom<Map>>::Error: std::fmt::Display,
{
    let fd = map
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(map_err(name))?;
    let data = MapData::from_fd(fd).map_err(map_err(name))?;
    let map = Map::from_map_data(data).map_err(map_err(name))?;
    T::try_from(map).map_err(map_err(name))
}

impl LegTable {
    pub(crate) fn new(legs: Map, counters: Map, stats: Map) -> Result<LegTable, FastPathError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| FastPathError::Load(e.to_string()))?;
        Ok(LegTable {
            legs: HashMap::try_from(legs).map_err(map_err("legs"))?,
            counters: PerCpuHashMap::try_from(counters).map_err(map_err("counters"))?,
            stats: PerCpuArray::try_from(stats).map_err(map_err("stats"))?,
            attached: Vec::new(),
            addresses: iface::Addresses::default(),
            cpus,
        })
    }

    /// Another table over the same maps and interfaces (new map descriptors).
    pub fn try_clone(&self) -> Result<LegTable, FastPathError> {
        Ok(LegTable {
            legs: dup(self.legs.map(), "legs")?,
            counters: dup(self.counters.map(), "counters")?,
            stats: dup(self.stats.map(), "stats")?,
            attached: self.attached.clone(),
            addresses: iface::Addresses::default(),
            cpus: self.cpus,
        })
    }

    /// One more attached interface.
    pub(crate) fn add_interface(&mut self, name: &str, ifindex: u32) {
        self.attached.push((name.to_owned(), ifindex));
        self.refresh_addresses();
    }

    fn refresh_addresses(&mut self) {
        let attached: Vec<(&str, u32)> = self
            .attached
            .iter()
            .map(|(n, i)| (n.as_str(), *i))
            .collect();
        self.addresses.refresh(&attached);
    }

    /// Starts forwarding one port of a locked leg in the kernel. Its counters start at
    /// zero. Promoting a port that is already promoted replaces its route and restarts
    /// its counters (demote first to keep the old figures).
    pub fn promote(&mut self, leg: &FastLeg) -> Result<(), FastPathError> {
        let v4 = leg.local.is_ipv4();
        if [leg.peer, leg.out_local, leg.out_peer]
            .iter()
            .any(|a| a.is_ipv4() != v4)
        {
            return Err(FastPathError::FamilyMismatch);
        }
        let out_ip = leg.out_local.ip();
        if self.addresses.holder(out_ip).is_none() {
            self.refresh_addresses();
        }
        let (out_ifindex, out_src_mac) = self
            .addresses
            .holder(out_ip)
            .ok_or(FastPathError::NoEgress(out_ip))?;
        let value = LegValue {
            local_addr: addr_bytes(leg.local.ip()),
            peer_addr: addr_bytes(leg.peer.ip()),
            out_src_addr: addr_bytes(leg.out_local.ip()),
            out_dst_addr: addr_bytes(leg.out_peer.ip()),
            peer_port: leg.peer.port().to_be(),
            out_src_port: leg.out_local.port().to_be(),
            out_dst_port: leg.out_peer.port().to_be(),
            user_pt: leg
                .user_payload_type
                .filter(|pt| *pt < 128)
                .unwrap_or(NO_USER_PT),
            flags: if leg.kind == PortKind::Rtp {
                LEG_RTP
            } else {
                0
            },
            clock_rate: leg.clock_rate.max(1),
            out_ifindex,
            out_src_mac,
            pad: [0; 2],
        };
        let key = LegKey::new(leg.local);
        let zero = PerCpuValues::try_from(vec![CpuCounters::default(); self.cpus])
            .map_err(map_err("counters"))?;
        // Counters first: the program counts only into an existing entry.
        self.counters
            .insert(key, zero, 0)
            .map_err(map_err("counters"))?;
        self.legs.insert(key, value, 0).map_err(map_err("legs"))
    }

    /// Stops forwarding a port in the kernel; its packets go up to the worker again.
    /// Returns the port's final counters (`None` when it was not promoted) and removes them.
    ///
    /// The route goes first, then the counters are read: a program run that found the
    /// route just before it went (a packet already in flight on another CPU) can still
    /// add that one packet after the read.
    pub fn demote(&mut self, key: LegKey) -> Result<Option<LegCounters>, FastPathError> {
        let had_route = self.legs.remove(&key).is_ok();
        let counters = self.read_counters(key)?;
        let _ = self.counters.remove(&key);
        Ok(if had_route { counters } else { None })
    }

    /// A promoted port's counters, all CPUs merged (`None` when it is not promoted).
    pub fn read_counters(&self, key: LegKey) -> Result<Option<LegCounters>, FastPathError> {
        match self.counters.get(&key, 0) {
            Ok(per_cpu) => Ok(Some(LegCounters::merge(&per_cpu))),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err("counters")(e)),
        }
    }

    /// Whether a port is promoted.
    #[must_use]
    pub fn is_promoted(&self, key: LegKey) -> bool {
        self.legs.get(&key, 0).is_ok()
    }

    /// The program-wide counters, all CPUs merged.
    pub fn stats(&self) -> Result<FastPathStats, FastPathError> {
        let mut out = FastPathStats::default();
        for (i, slot) in (0u32..).zip(out.0.iter_mut()) {
            let per_cpu = self.stats.get(&i, 0).map_err(map_err("stats"))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }
}
