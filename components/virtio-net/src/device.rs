//! The device as a whole, the NIC Ebb's root: probing and initialising a
//! virtio-net device (transport, features, MTU, queue pairs, MSI-X, the
//! control queue), and the [`NetDevice`] the network manager runs over.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::native::irq::{self, IrqVector};
use ebbrt_net::device::{NetDevice, NetQueue};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{BarInfo, Command, DeviceFunction, PciRoot};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::ebb::VirtioNet;
use crate::features::{Features, Polling};
use crate::hal::IdentityHal;
use crate::legacy::LegacyTransport;
use crate::pci::{Msix, PortCam, read_config};
use crate::queue::{PendingPair, QUEUE_SIZE};

const SUPPORTED: Features = Features::all();
const VENDOR: u16 = 0x1af4;
/// Transitional (legacy-capable) and modern-only virtio-net device ids.
const NET_IDS: [u16; 2] = [0x1000, 0x1041];
const NO_VECTOR: u16 = 0xffff;
/// Receive buffer size: a 12-byte header and a 1514-byte frame fit.
pub(crate) const RX_BUFFER: usize = 2048;
/// The largest MTU the receive buffers hold; a device that advises a
/// larger one (`MTU`) still gets frames of at most this.
const MAX_MTU: usize = 1500;
/// The smallest MTU a device may advise (virtio 1.2, 5.1.4.1: IPv4's 68).
const MIN_MTU: usize = 68;
/// Offsets in the device configuration (virtio 1.2, 5.1.4).
const CONFIG_MAX_PAIRS: usize = 8;
const CONFIG_MTU: usize = 10;

/// Either transport, so the queues need not be generic over it.
pub(crate) enum AnyTransport {
    Modern { t: PciTransport, common: *mut u8 },
    Legacy(LegacyTransport),
}

// SAFETY: the raw pointer names the device's common configuration MMIO,
// which the transport (always behind a lock) may use from any core.
unsafe impl Send for AnyTransport {}

macro_rules! each {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            AnyTransport::Modern { t: $t, .. } => $e,
            AnyTransport::Legacy($t) => $e,
        }
    };
}

impl Transport for AnyTransport {
    fn device_type(&self) -> DeviceType {
        each!(self, t => t.device_type())
    }
    fn read_device_features(&mut self) -> u64 {
        each!(self, t => t.read_device_features())
    }
    fn write_driver_features(&mut self, f: u64) {
        each!(self, t => t.write_driver_features(f))
    }
    fn max_queue_size(&mut self, q: u16) -> u32 {
        each!(self, t => t.max_queue_size(q))
    }
    fn notify(&mut self, q: u16) {
        each!(self, t => t.notify(q))
    }
    fn get_status(&self) -> DeviceStatus {
        each!(self, t => t.get_status())
    }
    fn set_status(&mut self, s: DeviceStatus) {
        each!(self, t => t.set_status(s))
    }
    fn set_guest_page_size(&mut self, s: u32) {
        each!(self, t => t.set_guest_page_size(s))
    }
    fn requires_legacy_layout(&self) -> bool {
        each!(self, t => t.requires_legacy_layout())
    }
    fn queue_set(&mut self, q: u16, size: u32, d: PhysAddr, dr: PhysAddr, dv: PhysAddr) {
        each!(self, t => t.queue_set(q, size, d, dr, dv))
    }
    fn queue_unset(&mut self, q: u16) {
        each!(self, t => t.queue_unset(q))
    }
    fn queue_used(&mut self, q: u16) -> bool {
        each!(self, t => t.queue_used(q))
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        each!(self, t => t.ack_interrupt())
    }
    fn read_config_generation(&self) -> u32 {
        each!(self, t => t.read_config_generation())
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        each!(self, t => t.read_config_space(offset))
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), Error> {
        each!(self, t => t.write_config_space(offset, value))
    }
}

impl AnyTransport {
    /// Routes queue `q`'s interrupts to MSI-X entry `v`; true if accepted.
    fn set_queue_vector(&mut self, q: u16, v: u16) -> bool {
        match self {
            AnyTransport::Legacy(t) => t.set_queue_vector(q, v) == v,
            AnyTransport::Modern { common, .. } => {
                let c = *common;
                // SAFETY: `common` points at the device's virtio common
                // configuration (found through its capability, inside the
                // identity map); queue_select is at 0x16 and
                // queue_msix_vector at 0x1a (virtio 1.2, 4.1.4.3).
                unsafe {
                    c.add(0x16).cast::<u16>().write_volatile(q);
                    c.add(0x1a).cast::<u16>().write_volatile(v);
                    c.add(0x1a).cast::<u16>().read_volatile() == v
                }
            }
        }
    }

    fn set_config_vector(&mut self, v: u16) {
        match self {
            AnyTransport::Legacy(t) => {
                t.set_config_vector(v);
            }
            AnyTransport::Modern { common, .. } => {
                // SAFETY: as in `set_queue_vector`; msix_config is at 0x10.
                unsafe { common.add(0x10).cast::<u16>().write_volatile(v) };
            }
        }
    }
}

/// A virtio-net device, initialised: the device-wide state that the NIC
/// Ebb's root holds and every core's representative shares. Queue pairs
/// wait here until the representative of their core opens them.
pub(crate) struct Nic {
    /// The transport (registers, notifications), shared by every pair.
    pub(crate) transport: spin::Mutex<AnyTransport>,
    /// The negotiated features.
    pub(crate) features: Features,
    /// Bytes of `virtio_net_hdr` before each frame.
    pub(crate) header: usize,
    /// When receive queues switch from interrupts to polling.
    pub(crate) polling: Polling,
    /// How long a polling queue waits for a frame before it goes back to
    /// its interrupt (ns; boot argument `virtio.poll_quiet_us`).
    pub(crate) poll_quiet_ns: u64,
    /// The MTU the stack uses: the device's advice (`MTU`), at most what
    /// a receive buffer holds.
    pub(crate) mtu: usize,
    mac: [u8; 6],
    /// Queue pair `i`, until core `i`'s representative opens it.
    pairs: spin::Mutex<Vec<Option<PendingPair>>>,
    /// How many pairs the device uses (1 until the control queue set more).
    active: AtomicUsize,
    ctrl: spin::Mutex<Option<VirtQueue<IdentityHal, 64>>>,
    max_pairs: u16,
    legacy: bool,
    msix: bool,
}

/// Why a device could not be brought up.
#[derive(Debug)]
pub(crate) enum ProbeError {
    /// The transport could not be set up.
    Transport(String),
    /// The device refused the features.
    Features,
    /// A queue could not be created.
    Queue(Error),
}

impl core::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProbeError::Transport(why) => write!(f, "no usable transport: {why}"),
            ProbeError::Features => write!(f, "the device refused the negotiated features"),
            ProbeError::Queue(e) => write!(f, "a virtqueue could not be set up: {e}"),
        }
    }
}

fn common_cfg(root: &mut PciRoot<PortCam>, df: DeviceFunction) -> Option<*mut u8> {
    let cap = root
        .capabilities(df)
        .find(|c| c.id == 0x09 && (c.private_header >> 8) as u8 == 1)?;
    let bar = read_config(df, cap.offset + 4) as u8;
    let offset = read_config(df, cap.offset + 8);
    let (base, _) = root.bar_info(df, bar).ok()??.memory_address_size()?;
    let addr = base + u64::from(offset);
    (base != 0 && addr < crate::hal::identity_mapped()).then_some(addr as *mut u8)
}

/// Routes the function's INTx line to a vector on core 0; the vector and
/// the I/O APIC input.
fn intx_line(df: DeviceFunction) -> Option<(IrqVector, u8)> {
    let w = read_config(df, 0x3c);
    let (line, pin) = (w as u8, (w >> 8) as u8);
    if pin == 0 || line == 0xff {
        return None;
    }
    let v = irq::allocate(CoreId(0))?;
    match ebbrt_core::native::ioapic::route_level(line, &v) {
        Ok(()) => Some((v, line)),
        Err(e) => {
            log::warn!("virtio-net: INTx line {line}: {e}; polling");
            None
        }
    }
}

fn io_bar0(root: &mut PciRoot<PortCam>, df: DeviceFunction) -> Option<u16> {
    match root.bar_info(df, 0).ok()?? {
        BarInfo::IO { address, .. } if address != 0 => u16::try_from(address).ok(),
        _ => None,
    }
}

impl Nic {
    /// The negotiated features.
    pub(crate) fn features(&self) -> Features {
        self.features
    }

    /// The MTU the stacks use.
    pub(crate) fn mtu(&self) -> usize {
        self.mtu
    }

    /// Finds and initialises the first virtio-net device on PCI bus 0.
    pub(crate) fn probe() -> Option<Nic> {
        let df = *crate::pci::find(VENDOR, &NET_IDS).first()?;
        match Self::init(df) {
            Ok(d) => Some(d),
            Err(e) => {
                log::error!("virtio-net at {df:?}: {e}");
                None
            }
        }
    }

    fn init(df: DeviceFunction) -> Result<Nic, ProbeError> {
        // SAFETY: this driver alone uses the configuration mechanism, and it
        // programs only `df`, the device it is probing and will drive.
        let mut root = PciRoot::new(unsafe { PortCam::new() });
        let (_, cmd) = root.get_status_command(df);
        root.set_command(
            df,
            cmd | Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER,
        );
        let msix = Msix::find(&mut root, df).filter(|m| m.usable());
        if let Some(m) = &msix {
            // SAFETY: as for `root`: our device's MSI-X capability only.
            m.enable(&mut unsafe { PortCam::new() }, df);
        }
        let force_legacy = ebbrt_core::native::boot_arg("virtio.legacy").is_some();
        let transport = match (
            force_legacy,
            PciTransport::new::<IdentityHal, _>(&mut root, df),
        ) {
            (false, Ok(t)) => {
                let common = common_cfg(&mut root, df)
                    .ok_or(ProbeError::Transport("no common configuration".into()))?;
                AnyTransport::Modern { t, common }
            }
            (_, modern) => {
                let base = io_bar0(&mut root, df).ok_or_else(|| {
                    ProbeError::Transport(format!(
                        "neither a modern interface ({:?}) nor a legacy I/O BAR",
                        modern.err()
                    ))
                })?;
                // SAFETY: `base` is I/O BAR 0 of `df`, the legacy virtio
                // device this probe drives and no one else does.
                AnyTransport::Legacy(unsafe {
                    LegacyTransport::new(base, msix.is_some(), DeviceType::Network)
                })
            }
        };
        let legacy = matches!(transport, AnyTransport::Legacy(_));
        let mut t = transport;
        // Virtio 3.1.1: reset, acknowledge, negotiate, FEATURES_OK.
        t.set_status(DeviceStatus::empty());
        t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let offered = Features::from_bits_truncate(t.read_device_features());
        let mut features = offered & SUPPORTED;
        if legacy {
            features.remove(Features::VERSION_1);
        }
        if !features.contains(Features::CTRL_VQ) {
            features.remove(Features::MQ);
        }
        t.write_driver_features(features.bits());
        if !legacy {
            t.set_status(
                DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK,
            );
            if !t.get_status().contains(DeviceStatus::FEATURES_OK) {
                t.set_status(DeviceStatus::FAILED);
                return Err(ProbeError::Features);
            }
        }
        let mac = if features.contains(Features::MAC) {
            let mut m = [0u8; 6];
            for (i, b) in m.iter_mut().enumerate() {
                *b = t.read_config_space::<u8>(i).unwrap_or(0);
            }
            m
        } else {
            let r = ebbrt_core::time::Instant::now().as_nanos().to_le_bytes();
            [0x02, r[0], r[1], r[2], r[3], r[4]]
        };
        let max_pairs = if features.contains(Features::MQ) {
            t.read_config_space::<u16>(CONFIG_MAX_PAIRS)
                .unwrap_or(1)
                .max(1)
        } else {
            1
        };
        let mtu = if features.contains(Features::MTU) {
            let advised = t
                .read_config_space::<u16>(CONFIG_MTU)
                .map_or(MAX_MTU, usize::from);
            advised.clamp(MIN_MTU, MAX_MTU)
        } else {
            MAX_MTU
        };
        let pairs = usize::from(max_pairs).min(cpu::count().max(1));
        let header = if features.intersects(Features::VERSION_1 | Features::MRG_RXBUF) {
            12
        } else {
            10
        };
        let mut list = Vec::with_capacity(pairs);
        for k in 0..pairs {
            let rx =
                VirtQueue::<IdentityHal, QUEUE_SIZE>::new(&mut t, (2 * k) as u16, false, false)
                    .map_err(ProbeError::Queue)?;
            let tx =
                VirtQueue::<IdentityHal, QUEUE_SIZE>::new(&mut t, (2 * k + 1) as u16, false, false)
                    .map_err(ProbeError::Queue)?;
            // Each pair interrupts the core that will own it.
            let irq: Option<IrqVector> = msix.as_ref().and_then(|m| {
                let entry = (k + 1) as u16;
                if entry >= m.entries {
                    return None;
                }
                let v = irq::allocate(CoreId(k as u32))?;
                m.set_entry(entry, v.msi_message());
                let ok = t.set_queue_vector((2 * k) as u16, entry)
                    & t.set_queue_vector((2 * k + 1) as u16, entry);
                ok.then_some(v)
            });
            // Without MSI-X, queue pair 0 takes the INTx line (through the
            // I/O APIC, to core 0); other pairs poll.
            let (irq, intx) = match (irq, k) {
                (Some(v), _) => (Some(v), None),
                (None, 0) if msix.is_none() => match intx_line(df) {
                    Some((v, gsi)) => (Some(v), Some(gsi)),
                    None => (None, None),
                },
                (None, _) => (None, None),
            };
            list.push(PendingPair::new(k, rx, tx, irq, intx));
        }
        if msix.is_some() {
            t.set_config_vector(NO_VECTOR);
        }
        let ctrl = if features.contains(Features::CTRL_VQ) {
            let q = VirtQueue::<IdentityHal, 64>::new(&mut t, 2 * max_pairs, false, false)
                .map_err(ProbeError::Queue)?;
            if msix.is_some() {
                t.set_queue_vector(2 * max_pairs, NO_VECTOR);
            }
            Some(q)
        } else {
            None
        };
        let polling = match ebbrt_core::native::boot_arg("virtio.poll") {
            Some("never") => Polling::Never,
            Some("auto") | None => Polling::Auto,
            Some(other) => {
                log::warn!("virtio-net: virtio.poll={other} is not auto or never; using auto");
                Polling::Auto
            }
        };
        let poll_quiet_ns = match ebbrt_core::native::boot_arg("virtio.poll_quiet_us") {
            None => crate::queue::POLL_QUIET_NS,
            Some(v) => match v.parse::<u64>() {
                Ok(us) if us > 0 => us * 1000,
                _ => {
                    log::warn!(
                        "virtio-net: virtio.poll_quiet_us={v} is not a positive number; using {}",
                        crate::queue::POLL_QUIET_NS / 1000
                    );
                    crate::queue::POLL_QUIET_NS
                }
            },
        };
        let nic = Nic {
            transport: spin::Mutex::new(t),
            features,
            header,
            polling,
            poll_quiet_ns,
            mtu,
            mac,
            pairs: spin::Mutex::new(Vec::new()),
            active: AtomicUsize::new(1),
            ctrl: spin::Mutex::new(ctrl),
            max_pairs,
            legacy,
            msix: msix.is_some(),
        };
        // Fill the receive rings before the device may use them.
        for p in &mut list {
            p.fill_rx(&nic.transport);
        }
        nic.transport.lock().finish_init();
        log::info!(
            "virtio-net: {} {:02x?}, features {:?}, MTU {}, {} of {} queue pair(s), {}",
            if legacy { "legacy" } else { "modern" },
            mac,
            features,
            mtu,
            pairs,
            max_pairs,
            if msix.is_some() {
                "MSI-X"
            } else if list.first().is_some_and(PendingPair::has_irq) {
                "INTx through the I/O APIC"
            } else {
                "no interrupt: polling"
            }
        );
        *nic.pairs.lock() = list.into_iter().map(Some).collect();
        Ok(nic)
    }

    /// Sends a control command (class, command, data); true if acknowledged.
    fn control(&self, class: u8, command: u8, data: &[u8]) -> bool {
        let mut ctrl = self.ctrl.lock();
        let Some(q) = ctrl.as_mut() else { return false };
        // On the heap: the device reads them by physical address, and only
        // heap memory is identity mapped (stacks are not).
        let head = vec![class, command];
        let data = data.to_vec();
        let mut ack = vec![0xffu8];
        let mut t = self.transport.lock();
        match q.add_notify_wait_pop(&[&head, &data], &mut [&mut ack], &mut *t) {
            Ok(_) => ack[0] == 0,
            Err(_) => false,
        }
    }
}

impl NetDevice for Nic {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn queue_pairs(&self) -> usize {
        self.pairs.lock().len()
    }

    fn take_queue(&self, index: usize) -> Option<Box<dyn NetQueue>> {
        // Pair `i` interrupts core `i`, whose representative owns it.
        let core = cpu::current();
        if index != core.index() {
            log::error!(
                "virtio-net: queue pair {index} requested on {core}; it belongs to core {index}"
            );
            return None;
        }
        if index >= self.active.load(Ordering::Acquire) {
            log::error!("virtio-net: queue pair {index} is not active on the device");
            return None;
        }
        let pair = VirtioNet::local().open(self, || self.pairs.lock().get_mut(index)?.take())?;
        Some(Box::new(pair))
    }

    fn activate(&self, pairs: usize) -> usize {
        let have = self.queue_pairs();
        let mut n = pairs.clamp(1, have.max(1));
        // VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET.
        if n > 1 && !self.control(4, 0, &(n as u16).to_le_bytes()) {
            log::warn!("virtio-net: the device refused {n} queue pairs; using one");
            n = 1;
        }
        self.active.store(n, Ordering::Release);
        n
    }

    fn describe(&self) -> String {
        format!(
            "virtio-net ({}), {} of {} queue pair(s) active (device max {}), MTU {}, {}{}{}",
            if self.legacy { "legacy" } else { "modern" },
            self.active.load(Ordering::Acquire),
            self.queue_pairs(),
            self.max_pairs,
            self.mtu,
            if self.features.contains(Features::CSUM) {
                "tx csum offload, "
            } else {
                ""
            },
            if self.features.contains(Features::GUEST_CSUM) {
                "rx csum offload, "
            } else {
                ""
            },
            if self.msix {
                "MSI-X"
            } else {
                "INTx or polling"
            },
        )
    }
}
