//! pcsc-lite's client library, loaded at run time.
//!
//! The agent does not link against libpcsclite: building it needs neither the
//! PC/SC headers nor pkg-config, and a machine without the library still runs
//! the agent. `libpcsclite.so.1` is opened (dlopen) the first time a chip
//! operation needs it; the functions below are resolved then and kept for the
//! life of the process. While it cannot be loaded, every operation fails with
//! [`Error::NoLibrary`] (the station turns it into `PRT_SETUP_ERROR`) and the
//! next operation tries again, so that installing the library needs no restart.
//!
//! Only what `pcsc_station.rs` uses is here: establish and release a context,
//! list readers, wait for a reader's state, connect exclusively (T=0 or T=1),
//! transmit, disconnect.
//!
//! The ABI is pcsc-lite's on Linux (`PCSC/wintypes.h`, `PCSC/pcsclite.h`,
//! `PCSC/winscard.h` outside `__APPLE__`): `DWORD` is `unsigned long` and
//! `LONG` is `long` (64 bits on amd64, 32 on 32-bit targets); `SCARDCONTEXT`
//! and `SCARDHANDLE` are `LONG`; the structures are not packed. Return codes
//! are `LONG`s written `((LONG)0x801000xx)`: positive in a 64-bit `long`,
//! negative in a 32-bit one; they are compared on their low 32 bits, which is
//! right for both.

use std::ffi::{c_char, c_long, c_ulong, c_void, CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::mem::{size_of, ManuallyDrop};
use std::ptr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The library's soname (Debian package `libpcsclite1`).
pub(crate) const LIBRARY: &str = "libpcsclite.so.1";

type Dword = c_ulong;
type Long = c_long;
/// `SCARDCONTEXT` and `SCARDHANDLE`.
type Handle = Long;

// `DWORD` lengths are converted from and to `usize` with `as`: on Linux
// `unsigned long` and `usize` have the same width (LP64 and ILP32 alike).
const _: () = assert!(size_of::<Dword>() == size_of::<usize>());

const SCARD_SCOPE_USER: Dword = 0x0000;
const SCARD_SHARE_EXCLUSIVE: Dword = 0x0001;
const SCARD_PROTOCOL_T0: Dword = 0x0001;
const SCARD_PROTOCOL_T1: Dword = 0x0002;
const SCARD_LEAVE_CARD: Dword = 0x0000;
const SCARD_RESET_CARD: Dword = 0x0001;
/// `dwTimeout` meaning "no time-out": never passed (see [`timeout_ms`]).
const INFINITE: Dword = 0xFFFF_FFFF;
const MAX_ATR_SIZE: usize = 33;

/// The largest answer an extended APDU may bring (`MAX_BUFFER_SIZE_EXTENDED`:
/// 64K of data, header, Lc, Le and the status word).
pub(crate) const MAX_BUFFER_SIZE_EXTENDED: usize = 4 + 3 + (1 << 16) + 3 + 2;

/// `SCARD_READERSTATE`.
#[repr(C)]
struct ScardReaderState {
    sz_reader: *const c_char,
    pv_user_data: *mut c_void,
    dw_current_state: Dword,
    dw_event_state: Dword,
    cb_atr: Dword,
    rgb_atr: [u8; MAX_ATR_SIZE],
}

/// `SCARD_IO_REQUEST` (both fields are `unsigned long` in pcsclite.h).
#[repr(C)]
struct ScardIoRequest {
    dw_protocol: Dword,
    cb_pci_length: Dword,
}

// The prototypes of winscard.h.
type EstablishContextFn =
    unsafe extern "C" fn(Dword, *const c_void, *const c_void, *mut Handle) -> Long;
type ReleaseContextFn = unsafe extern "C" fn(Handle) -> Long;
type ListReadersFn = unsafe extern "C" fn(Handle, *const c_char, *mut c_char, *mut Dword) -> Long;
type GetStatusChangeFn = unsafe extern "C" fn(Handle, Dword, *mut ScardReaderState, Dword) -> Long;
type ConnectFn =
    unsafe extern "C" fn(Handle, *const c_char, Dword, Dword, *mut Handle, *mut Dword) -> Long;
type DisconnectFn = unsafe extern "C" fn(Handle, Dword) -> Long;
type TransmitFn = unsafe extern "C" fn(
    Handle,
    *const ScardIoRequest,
    *const u8,
    Dword,
    *mut ScardIoRequest,
    *mut u8,
    *mut Dword,
) -> Long;

/// The loaded library and the functions resolved from it.
struct Api {
    establish_context: EstablishContextFn,
    release_context: ReleaseContextFn,
    list_readers: ListReadersFn,
    get_status_change: GetStatusChangeFn,
    connect: ConnectFn,
    disconnect: DisconnectFn,
    transmit: TransmitFn,
    /// Keeps the library mapped while the function pointers above exist.
    _library: libloading::Library,
}

impl Api {
    /// Opens `name` and resolves every function, or says why not.
    fn load(name: &str) -> Result<Api, String> {
        // SAFETY: loading runs the library's initialisers. `name` is the
        // system's pcsc-lite client library (or, in tests, a name that does
        // not exist), a plain C library whose load-time set-up needs nothing
        // from us and does not touch our state.
        let library = unsafe { libloading::Library::new(name) }
            .map_err(|e| format!("cannot load {name}: {e}"))?;
        macro_rules! resolve {
            ($symbol:literal, $ty:ty) => {{
                // SAFETY: `$ty` is the prototype winscard.h gives `$symbol`
                // with pcsc-lite's Linux types (see the module's notes). The
                // pointer is copied out of the `Symbol`; it stays valid while
                // `library` is loaded, and `Api` keeps `library` with it.
                let symbol = unsafe { library.get::<$ty>($symbol) }
                    .map_err(|e| format!("{name} lacks {:?}: {e}", $symbol))?;
                *symbol
            }};
        }
        Ok(Api {
            establish_context: resolve!(c"SCardEstablishContext", EstablishContextFn),
            release_context: resolve!(c"SCardReleaseContext", ReleaseContextFn),
            list_readers: resolve!(c"SCardListReaders", ListReadersFn),
            get_status_change: resolve!(c"SCardGetStatusChange", GetStatusChangeFn),
            connect: resolve!(c"SCardConnect", ConnectFn),
            disconnect: resolve!(c"SCardDisconnect", DisconnectFn),
            transmit: resolve!(c"SCardTransmit", TransmitFn),
            _library: library,
        })
    }
}

/// The library once loaded (never unloaded).
static API: OnceLock<Api> = OnceLock::new();
/// One loading attempt at a time.
static LOADING: Mutex<()> = Mutex::new(());

fn api() -> Result<&'static Api, Error> {
    if let Some(api) = API.get() {
        return Ok(api);
    }
    let _one_at_a_time = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(api) = API.get() {
        return Ok(api);
    }
    match Api::load(LIBRARY) {
        Ok(api) => Ok(API.get_or_init(|| api)),
        Err(why) => {
            tracing::warn!(error = %why, "the PC/SC library cannot be loaded");
            Err(Error::NoLibrary)
        }
    }
}

/// Whether the library is loaded, or loads now.
pub(crate) fn available() -> bool {
    api().is_ok()
}

/// A pcsc-lite return code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Code(u32);

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.0)
    }
}

/// Why a PC/SC call failed: the codes the station tells apart (pcsclite.h),
/// any other kept as it came.
// The names follow pcsc-lite's (SCARD_F_INTERNAL_ERROR, SCARD_F_COMM_ERROR).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// `libpcsclite.so.1` cannot be loaded, or lacks a function.
    NoLibrary,
    /// SCARD_F_INTERNAL_ERROR
    InternalError,
    /// SCARD_E_CANCELLED
    Cancelled,
    /// SCARD_E_NO_MEMORY
    NoMemory,
    /// SCARD_E_INSUFFICIENT_BUFFER
    InsufficientBuffer,
    /// SCARD_E_UNKNOWN_READER
    UnknownReader,
    /// SCARD_E_TIMEOUT
    Timeout,
    /// SCARD_E_SHARING_VIOLATION
    SharingViolation,
    /// SCARD_E_NO_SMARTCARD
    NoSmartcard,
    /// SCARD_E_PROTO_MISMATCH
    ProtoMismatch,
    /// SCARD_E_SYSTEM_CANCELLED
    SystemCancelled,
    /// SCARD_F_COMM_ERROR
    CommError,
    /// SCARD_E_INVALID_ATR
    InvalidAtr,
    /// SCARD_E_NOT_TRANSACTED
    NotTransacted,
    /// SCARD_E_READER_UNAVAILABLE
    ReaderUnavailable,
    /// SCARD_E_NO_SERVICE
    NoService,
    /// SCARD_E_SERVICE_STOPPED
    ServiceStopped,
    /// SCARD_E_NO_ACCESS
    NoAccess,
    /// SCARD_E_NO_READERS_AVAILABLE
    NoReadersAvailable,
    /// SCARD_W_UNSUPPORTED_CARD
    UnsupportedCard,
    /// SCARD_W_UNRESPONSIVE_CARD
    UnresponsiveCard,
    /// SCARD_W_UNPOWERED_CARD
    UnpoweredCard,
    /// SCARD_W_RESET_CARD
    ResetCard,
    /// SCARD_W_REMOVED_CARD
    RemovedCard,
    /// SCARD_W_SECURITY_VIOLATION
    SecurityViolation,
    /// Any other code.
    Other(Code),
}

impl Error {
    /// The error of a non-zero return code (its low 32 bits, see the module).
    fn from_code(code: u32) -> Error {
        match code {
            0x8010_0001 => Error::InternalError,
            0x8010_0002 => Error::Cancelled,
            0x8010_0006 => Error::NoMemory,
            0x8010_0008 => Error::InsufficientBuffer,
            0x8010_0009 => Error::UnknownReader,
            0x8010_000A => Error::Timeout,
            0x8010_000B => Error::SharingViolation,
            0x8010_000C => Error::NoSmartcard,
            0x8010_000F => Error::ProtoMismatch,
            0x8010_0012 => Error::SystemCancelled,
            0x8010_0013 => Error::CommError,
            0x8010_0015 => Error::InvalidAtr,
            0x8010_0016 => Error::NotTransacted,
            0x8010_0017 => Error::ReaderUnavailable,
            0x8010_001D => Error::NoService,
            0x8010_001E => Error::ServiceStopped,
            0x8010_0027 => Error::NoAccess,
            0x8010_002E => Error::NoReadersAvailable,
            0x8010_0065 => Error::UnsupportedCard,
            0x8010_0066 => Error::UnresponsiveCard,
            0x8010_0067 => Error::UnpoweredCard,
            0x8010_0068 => Error::ResetCard,
            0x8010_0069 => Error::RemovedCard,
            0x8010_006A => Error::SecurityViolation,
            other => Error::Other(Code(other)),
        }
    }
}

/// `Ok` for SCARD_S_SUCCESS, else the error.
fn check(rv: Long) -> Result<(), Error> {
    // `(LONG)0x801000xx` is positive in a 64-bit `long` and negative in a
    // 32-bit one: the low 32 bits are the code either way.
    match rv as u32 {
        0 => Ok(()),
        code => Err(Error::from_code(code)),
    }
}

/// A reader state mask (`SCARD_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State(Dword);

impl State {
    pub(crate) const UNAWARE: State = State(0x0000);
    pub(crate) const UNKNOWN: State = State(0x0004);
    pub(crate) const UNAVAILABLE: State = State(0x0008);
    pub(crate) const PRESENT: State = State(0x0020);
    pub(crate) const EXCLUSIVE: State = State(0x0080);
    pub(crate) const INUSE: State = State(0x0100);
    pub(crate) const MUTE: State = State(0x0200);

    /// Every bit of `other` is set.
    pub(crate) fn contains(self, other: State) -> bool {
        self.0 & other.0 == other.0
    }

    /// Some bit of `other` is set.
    pub(crate) fn intersects(self, other: State) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for State {
    type Output = State;
    fn bitor(self, other: State) -> State {
        State(self.0 | other.0)
    }
}

/// One reader for [`Context::get_status_change`]: its name, the state the
/// caller knows, and the state pcscd last reported.
pub(crate) struct ReaderState {
    name: CString,
    current: Dword,
    event: Dword,
}

impl ReaderState {
    pub(crate) fn new(name: CString, current: State) -> ReaderState {
        ReaderState {
            name,
            current: current.0,
            event: State::UNAWARE.0,
        }
    }

    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }

    /// The state flags last reported (without the event counter in the high
    /// 16 bits).
    pub(crate) fn event_state(&self) -> State {
        State(self.event & 0xFFFF)
    }

    /// Takes the reported state (event counter included) as the known one, so
    /// that the next wait returns on a change only.
    pub(crate) fn sync_current_state(&mut self) {
        self.current = self.event;
    }
}

/// What becomes of the card on disconnection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    LeaveCard,
    ResetCard,
}

/// A pcsc-lite context (`SCardEstablishContext`), released when dropped.
///
/// Neither `Send` nor `Sync`: each blocking task makes and uses its own, as
/// pcsc-lite advises (one context per thread).
pub(crate) struct Context {
    api: &'static Api,
    handle: Handle,
    _one_thread: PhantomData<*const ()>,
}

impl Context {
    /// A context of the user scope; [`Error::NoLibrary`] when the library
    /// cannot be loaded.
    pub(crate) fn establish() -> Result<Context, Error> {
        let api = api()?;
        let mut handle: Handle = 0;
        // SAFETY: the function has winscard.h's prototype (`Api::load`); both
        // reserved arguments may be null, and `handle` is a valid place for
        // the context it writes.
        let rv = unsafe {
            (api.establish_context)(SCARD_SCOPE_USER, ptr::null(), ptr::null(), &mut handle)
        };
        check(rv)?;
        Ok(Context {
            api,
            handle,
            _one_thread: PhantomData,
        })
    }

    /// The names of the readers, in pcscd's order (none: an empty list).
    pub(crate) fn list_readers(&self) -> Result<Vec<CString>, Error> {
        // A reader may come between the two calls and no longer fit: ask again.
        for _ in 0..3 {
            let mut needed: Dword = 0;
            // SAFETY: a valid context; null groups means all readers; a null
            // buffer asks only for the length, written to `needed`.
            let rv = unsafe {
                (self.api.list_readers)(self.handle, ptr::null(), ptr::null_mut(), &mut needed)
            };
            match check(rv) {
                Ok(()) => {}
                Err(Error::NoReadersAvailable) => return Ok(vec![]),
                Err(e) => return Err(e),
            }
            if needed == 0 {
                return Ok(vec![]);
            }
            let mut buf = vec![0u8; needed as usize];
            let mut len = needed;
            // SAFETY: `buf` has room for `len` bytes; pcscd writes at most
            // `len` bytes there (else it answers INSUFFICIENT_BUFFER) and the
            // length it wrote to `len`.
            let rv = unsafe {
                (self.api.list_readers)(
                    self.handle,
                    ptr::null(),
                    buf.as_mut_ptr().cast::<c_char>(),
                    &mut len,
                )
            };
            match check(rv) {
                Ok(()) => return Ok(multi_string(&buf[..(len as usize).min(buf.len())])),
                Err(Error::NoReadersAvailable) => return Ok(vec![]),
                Err(Error::InsufficientBuffer) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::InsufficientBuffer)
    }

    /// Waits until the state of one of `readers` differs from the one the
    /// caller knows, or `timeout` passes (`Err(Error::Timeout)`). The reported
    /// states are updated in both cases.
    pub(crate) fn get_status_change(
        &self,
        timeout: Duration,
        readers: &mut [ReaderState],
    ) -> Result<(), Error> {
        let mut raw: Vec<ScardReaderState> = readers
            .iter()
            .map(|r| ScardReaderState {
                sz_reader: r.name.as_ptr(),
                pv_user_data: ptr::null_mut(),
                dw_current_state: r.current,
                dw_event_state: 0,
                cb_atr: 0,
                rgb_atr: [0; MAX_ATR_SIZE],
            })
            .collect();
        // SAFETY: a valid context; `raw` holds `raw.len()` structures laid
        // out as SCARD_READERSTATE (repr(C), the same field types), each
        // `szReader` pointing to a NUL-terminated name owned by `readers`,
        // which outlives the call. pcsc-lite reads the names and the current
        // states, and writes only the event states and ATRs of these entries.
        let rv = unsafe {
            (self.api.get_status_change)(
                self.handle,
                timeout_ms(timeout),
                raw.as_mut_ptr(),
                raw.len() as Dword,
            )
        };
        for (reader, raw) in readers.iter_mut().zip(&raw) {
            reader.event = raw.dw_event_state;
        }
        check(rv)
    }

    /// Connects to the card in `reader` exclusively (no other program may
    /// interleave commands), T=0 or T=1.
    pub(crate) fn connect_exclusive(&self, reader: &CStr) -> Result<Card<'_>, Error> {
        let mut handle: Handle = 0;
        let mut protocol: Dword = 0;
        // SAFETY: a valid context, a NUL-terminated reader name, and valid
        // places for the card handle and the active protocol it writes.
        let rv = unsafe {
            (self.api.connect)(
                self.handle,
                reader.as_ptr(),
                SCARD_SHARE_EXCLUSIVE,
                SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                &mut handle,
                &mut protocol,
            )
        };
        check(rv)?;
        Ok(Card {
            context: self,
            handle,
            protocol,
        })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was established and is released once, here;
        // every card borrows it, so none outlives it.
        let rv = unsafe { (self.api.release_context)(self.handle) };
        if let Err(e) = check(rv) {
            tracing::debug!(error = ?e, "releasing the PC/SC context failed");
        }
    }
}

/// A connection to a card. Dropped without [`Card::disconnect`], it resets
/// the card.
pub(crate) struct Card<'ctx> {
    context: &'ctx Context,
    handle: Handle,
    /// The active protocol (T=0 or T=1).
    protocol: Dword,
}

impl Card<'_> {
    /// Sends `command`, puts the answer at the start of `answer` and returns
    /// its length. `answer` should hold [`MAX_BUFFER_SIZE_EXTENDED`] bytes.
    pub(crate) fn transmit(&self, command: &[u8], answer: &mut [u8]) -> Result<usize, Error> {
        // What pcsc-lite's own g_rgSCardT0Pci / g_rgSCardT1Pci hold.
        let pci = ScardIoRequest {
            dw_protocol: self.protocol,
            cb_pci_length: size_of::<ScardIoRequest>() as Dword,
        };
        let mut len = answer.len() as Dword;
        // SAFETY: a connected card handle; `pci` is a valid SCARD_IO_REQUEST;
        // `command` is readable for its length; `answer` is writable for
        // `len` bytes and pcsc-lite writes at most that many (else it answers
        // INSUFFICIENT_BUFFER), then the answer's length to `len`; the
        // received PCI may be null.
        let rv = unsafe {
            (self.context.api.transmit)(
                self.handle,
                &pci,
                command.as_ptr(),
                command.len() as Dword,
                ptr::null_mut(),
                answer.as_mut_ptr(),
                &mut len,
            )
        };
        check(rv)?;
        Ok((len as usize).min(answer.len()))
    }

    /// Ends the connection, leaving or resetting the card. Failing, the card
    /// is not reset on drop either.
    pub(crate) fn disconnect(self, disposition: Disposition) -> Result<(), Error> {
        let card = ManuallyDrop::new(self);
        let disposition = match disposition {
            Disposition::LeaveCard => SCARD_LEAVE_CARD,
            Disposition::ResetCard => SCARD_RESET_CARD,
        };
        // SAFETY: a connected card handle of a live context, disconnected
        // once: `ManuallyDrop` keeps `Drop` from doing it again.
        let rv = unsafe { (card.context.api.disconnect)(card.handle, disposition) };
        check(rv)
    }
}

impl Drop for Card<'_> {
    fn drop(&mut self) {
        // SAFETY: a connected card handle of a live context (the card borrows
        // it), disconnected once: `disconnect` skips this.
        let rv = unsafe { (self.context.api.disconnect)(self.handle, SCARD_RESET_CARD) };
        if let Err(e) = check(rv) {
            tracing::debug!(error = ?e, "disconnecting from the card failed");
        }
    }
}

/// A time-out in ms for `dwTimeout`, never INFINITE.
fn timeout_ms(timeout: Duration) -> Dword {
    timeout.as_millis().min(u128::from(INFINITE - 1)) as Dword
}

/// The strings of a multi-string (NUL-separated, ending with an empty one).
fn multi_string(buf: &[u8]) -> Vec<CString> {
    buf.split(|&b| b == 0)
        .take_while(|s| !s.is_empty())
        .filter_map(|s| CString::new(s).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structures_have_pcsc_lites_layout() {
        let long = size_of::<c_ulong>();
        // SCARD_READERSTATE: two pointers, three DWORDs, 33 bytes, padded to
        // the alignment of its widest field.
        let unpadded = 2 * size_of::<*const u8>() + 3 * long + MAX_ATR_SIZE;
        let align = std::mem::align_of::<ScardReaderState>();
        assert_eq!(
            size_of::<ScardReaderState>(),
            unpadded.div_ceil(align) * align
        );
        // What gcc gives for pcsclite.h on amd64 (sizeof, offsetof).
        #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
        {
            use std::mem::offset_of;
            assert_eq!(size_of::<ScardReaderState>(), 80);
            assert_eq!(offset_of!(ScardReaderState, dw_current_state), 16);
            assert_eq!(offset_of!(ScardReaderState, dw_event_state), 24);
            assert_eq!(offset_of!(ScardReaderState, cb_atr), 32);
            assert_eq!(offset_of!(ScardReaderState, rgb_atr), 40);
            assert_eq!(size_of::<ScardIoRequest>(), 16);
        }
        assert_eq!(size_of::<ScardIoRequest>(), 2 * long);
        assert_eq!(MAX_BUFFER_SIZE_EXTENDED, 65548);
    }

    #[test]
    fn codes_are_read_on_their_low_32_bits() {
        assert_eq!(check(0), Ok(()));
        assert_eq!(check(0x8010_000A), Err(Error::Timeout));
        assert_eq!(check(0x8010_002E), Err(Error::NoReadersAvailable));
        assert_eq!(check(0x8010_001D), Err(Error::NoService));
        assert_eq!(check(0x8010_0069), Err(Error::RemovedCard));
        // As a 32-bit `long` holds it.
        assert_eq!(
            check(0x8010_0069_u32 as i32 as Long),
            Err(Error::RemovedCard)
        );
        assert_eq!(check(0x8010_0031), Err(Error::Other(Code(0x8010_0031))));
        assert_eq!(format!("{:?}", Code(0x8010_0031)), "0x80100031");
    }

    #[test]
    fn reader_lists_split_at_each_nul() {
        assert_eq!(
            multi_string(b"Virtual PCD 00 00\0Virtual PCD 00 01\0\0"),
            vec![
                CString::new("Virtual PCD 00 00").unwrap(),
                CString::new("Virtual PCD 00 01").unwrap()
            ]
        );
        assert!(multi_string(b"\0").is_empty());
        assert!(multi_string(b"").is_empty());
        // A list cut short still yields what is whole.
        assert_eq!(multi_string(b"A\0B").len(), 2);
    }

    #[test]
    fn time_outs_are_never_infinite() {
        assert_eq!(timeout_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), INFINITE - 1);
    }

    #[test]
    fn states_keep_the_counter_apart() {
        let mut r = ReaderState::new(CString::new("R").unwrap(), State::UNAWARE);
        r.event = 0x0003_0022;
        assert!(r.event_state().contains(State::PRESENT));
        assert!(!r.event_state().intersects(State::MUTE | State::UNKNOWN));
        assert_eq!(r.event_state(), State(0x22));
        r.sync_current_state();
        assert_eq!(r.current, 0x0003_0022);
    }

    #[test]
    fn a_missing_library_is_an_error_not_a_panic() {
        let why = Api::load("libpcsclite-not-there.so.1")
            .err()
            .expect("no such library");
        assert!(why.contains("libpcsclite-not-there.so.1"), "{why}");
    }
}
