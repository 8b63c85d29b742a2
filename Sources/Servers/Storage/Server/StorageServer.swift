// The storage server: block reads and writes for every program, through a user-mode
// virtio-blk driver, restartable, with each client's outstanding request in that
// client's server state region (paper §2).
//
// Start-up. The server maps virtio-mmio slots 1-7 and owns their seven interrupts
// (system.toml; slot 0 is the network device's, which QEMU places there only when
// told `bus=virtio-mmio-bus.0`: disks fill the slots from the highest down); it
// probes each slot for a modern block device and drives
// the one the configuration service names (`storage.disk`: the Nth block device in
// slot order). The device is reset first: a previous instance may have left requests
// in flight. Without a disk every request is answered `ioError`.
//
// A request's life:
//
//   arrives ──► decoded and checked against the device (StorageWire.decode)
//           ──► recorded in the client's SSR: kind, sectors, priority, arrival number,
//               committed at once (`checkpoint`) and the request held (deferred)
//           ──► queued in the priority queue (priority, then arrival)
//           ──► submitted when the device has a free slot (8 in flight at most);
//               its data page comes from a pool of DMA pages
//           ──► completed (interrupt, as a notification): what the device was asked
//               (the header's sector, the data descriptor's page and length, read
//               back from DMA memory) must be what the client's SSR record asks,
//               or the server restarts and the request is done again; then the
//               read's data check is computed over its page, and the SSR commit of
//               the finished request and the reply — with the data, for a read —
//               go out together (`complete`)
//
// After a crash. The restarted server resets the device (it forgets what the old
// instance submitted), walks the SSRs and finds every outstanding request with its
// priority and arrival number: that is the queue, rebuilt. The kernel then delivers
// each held request again with its id — for a write that brings the data back — and
// each goes into the queue at its old place; no client resubmits anything. A request
// answered and committed before the crash gets its cached reply (a read is simply
// read again: reads are idempotent, and the cache has no room for 4 KiB of data).
// A write is acknowledged only after the device completed it, so no acknowledged
// write is lost; one the device completed but the crash kept unacknowledged is
// written again, with the same bytes, before its acknowledgement — which no client can
// tell from once.
//
// DMA. The driver hands the device no physical address outside the pages obtained
// at start (their addresses from `physicalAddress`, kept in a checked `DMAPages`):
// a damaged pointer stops the server instead of aiming the device at memory that is
// not ours. The kernel checks the same again (registers are written through it,
// Kernel/Core/Devices/DMAGuard.swift), which is what holds against a hostile driver. Which of our pages and which sector a request really went to is what the
// read-back at completion checks; the data check alone cannot, because the server
// computes it over whatever the device left in the page, with the client's sector.
//
// The caches must be right: the queue, the DMA page accounting and the device's size
// are checked before each request, and a damaged one restarts the server, which
// rebuilds them from the SSRs and the device. A request lost from them altogether
// (by a fault that left the server running) keeps its client waiting past the
// server's reply limit (system.toml): the kernel then restarts the server, and the
// request comes back.

import ConfigAPI
import ConsoleAPI
import CurioUser
import SSRFormat
import SSRServer
import StorageCore
import UserArch
import Virtio

/// One slot's device registers: read through the read-only mapping (volatile, never
/// merged), written through the kernel, which checks that the device can reach no
/// memory but our DMA pages. Our own checks (`DMAPages`) come first, so a refusal
/// means our state is damaged: the server has itself restarted.
struct MappedRegisters: VirtioRegisters {
    let slot: Int

    func read32(_ offset: Int) -> UInt32 {
        let address = StorageLayout.deviceWindow + UInt(slot) * StorageLayout.slotStride + UInt(offset)
        return curio_mmio_read32(UnsafeMutablePointer<UInt32>(bitPattern: address)!)
    }

    func write32(_ offset: Int, _ value: UInt32) {
        do throws(SyscallError) {
            try System.writeDeviceRegister(range: 0, offset: slot * Int(StorageLayout.slotStride) + offset,
                                           value: value)
        } catch {
            System.reportFailure()
        }
    }
}

struct HartFence: VirtioBarrier {
    func fence() { curio_fence() }
}

typealias BlockDriver = VirtioBlockDriver<MappedRegisters, HartFence>

enum StorageLayout {
    /// Where the kernel maps the server's first device range (system.toml: slots 1-7;
    /// `slot` below counts from the first of them).
    static let deviceWindow: UInt = 0x7000_0000
    static let slotStride: UInt = 0x1000
    static let slots = 7
    static let pageBytes = 4096
    /// DMA pages for request data: requests accepted but not yet completed each hold one.
    static let dataPages = 32
}

/// A request the server holds: whose it is, what it asks, and its DMA page. The
/// server keeps them in a fixed table; an entry's index is its tag at the device.
struct HeldRequest {
    var inUse = false
    var client = TaskID(rawValue: 0)
    var request = StorageRequest(kind: .read, sector: 0, count: 0, priority: 0)
    var arrival: UInt64 = 0
    /// The DMA page holding its data (-1: none yet, or a flush).
    var page = -1
    /// Handed to the device and not completed yet.
    var submitted = false
    /// The request's message has arrived (after a restart, the SSR tells of a request
    /// before the kernel delivers it again, with its data).
    var delivered = false
    /// Its client ended while the device still works on it: free the page on completion.
    var abandoned = false
}

struct StorageService: SSRService {
    typealias State = StorageClientState

    static let layoutVersion: UInt32 = 2
    static var initialState: StorageClientState { .initial }
    /// Interrupt i of the server is slot i's (system.toml lists them in slot order).
    static var notificationMask: UInt32 { 0x7F }
    static func check(_ state: UnsafePointer<StorageClientState>) -> Bool { StorageClientState.isConsistent(state.pointee) }

    var driver: BlockDriver?
    /// The slot of the driven device (its interrupt index).
    var slot = 0
    let queue = RequestQueue()
    /// As many entries as the queue holds: every held request is queued, submitted, or
    /// waiting to be delivered again.
    let held: UnsafeMutablePointer<HeldRequest>
    let heldCapacity = RequestQueue.capacity
    let pages: UnsafeMutableRawPointer
    /// The physical address of each data page, as the kernel said at start (checked).
    var dataPages = DMAPages()
    /// Data pages not held by a request (bit i = page i); only pages with a known address.
    var freePages: UInt64 = 0
    /// The pages that can be handed out at all.
    var usablePages: UInt64 = 0

    init() {
        held = UnsafeMutablePointer<HeldRequest>.allocate(capacity: heldCapacity)
        held.initialize(repeating: HeldRequest(), count: heldCapacity)
        pages = UnsafeMutableRawPointer.allocate(byteCount: StorageLayout.dataPages * StorageLayout.pageBytes,
                                                 alignment: StorageLayout.pageBytes)
        for index in 0..<StorageLayout.dataPages {
            let page = pages + index * StorageLayout.pageBytes
            page.storeBytes(of: 0, as: UInt8.self)
            // A page whose address the kernel does not give is never handed to the device.
            dataPages.append(try? System.physicalAddress(of: page))
            if dataPages.address(ofPage: index) != nil { usablePages |= 1 << UInt64(index) }
        }
        freePages = usablePages
        driver = Self.attach(diskIndex: Self.configuredDisk(), dataPages: dataPages, slot: &slot)
        if driver == nil && !Self.blockDevicePresent() {
            print("storage: no virtio block device (QEMU: -drive ... -device virtio-blk-device); requests will fail")
        }
    }

    /// `storage.disk` from the configuration service (0 if it does not answer).
    static func configuredDisk() -> Int {
        let value = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
        defer { value.deallocate() }
        let name: StaticString = "storage"
        guard let length = try? Config.get(program: UnsafeRawBufferPointer(start: name.utf8Start,
                                                                           count: name.utf8CodeUnitCount),
                                           setting: "disk", into: value) else { return 0 }
        var number = 0
        for byte in value[0..<length] {
            guard byte >= 48, byte <= 57, number < 1000 else { return 0 }
            number = number * 10 + Int(byte - 48)
        }
        return number
    }

    /// The registers of virtio-mmio slot `slot` in our device window.
    static func registers(ofSlot slot: Int) -> MappedRegisters {
        MappedRegisters(slot: slot)
    }

    static func blockDevicePresent() -> Bool {
        for slot in 0..<StorageLayout.slots where BlockDriver.probe(registers(ofSlot: slot)) { return true }
        return false
    }

    /// Finds the `diskIndex`th block device among the slots and brings it up, with
    /// `dataPages` (and its ring page) as the only memory it may give the device.
    static func attach(diskIndex: Int, dataPages: DMAPages, slot: inout Int) -> BlockDriver? {
        var seen = 0
        for candidate in 0..<StorageLayout.slots {
            let registers = registers(ofSlot: candidate)
            guard BlockDriver.probe(registers) else { continue }
            defer { seen += 1 }
            guard seen == diskIndex else { continue }
            let ring = UnsafeMutableRawPointer.allocate(byteCount: StorageLayout.pageBytes,
                                                        alignment: StorageLayout.pageBytes)
            ring.initializeMemory(as: UInt8.self, repeating: 0, count: StorageLayout.pageBytes)
            guard let physical = try? System.physicalAddress(of: ring) else { return nil }
            let region = DMARegion(base: ring, physical: physical, byteCount: StorageLayout.pageBytes)
            do throws(StorageDeviceError) {
                var driver = try BlockDriver(registers: registers, dma: region, dataPages: dataPages,
                                             barrier: HartFence())
                try driver.initialize()
                slot = candidate
                try? System.acknowledgeInterrupt(candidate)
                return driver
            } catch {
                print("storage: the block device in slot \(candidate) failed to start")
                return nil
            }
        }
        return nil
    }

    func find(_ client: TaskID) -> Int? {
        for index in 0..<heldCapacity where held[index].inUse && !held[index].abandoned && held[index].client == client {
            return index
        }
        return nil
    }

    func freeEntry() -> Int? {
        for index in 0..<heldCapacity where !held[index].inUse { return index }
        return nil
    }

    // MARK: Requests

    mutating func rebuild(client: TaskID, state: StorageClientState) {
        guard let request = state.outstanding, let index = freeEntry() else { return }
        // The device was reset: whatever the old instance submitted is queued again at
        // its old place; it goes to the device once the kernel has delivered it again.
        held[index] = HeldRequest(inUse: true, client: client, request: request, arrival: state.arrival)
        try? queue.insert(StorageClientID(rawValue: client.rawValue), priority: request.priority,
                          arrival: state.arrival)
    }

    /// The server's caches, checked before each request (paper §2: the global view is
    /// "maintained and verified during the processing of client requests"): the queue's
    /// own integrity, every DMA page either free or held by exactly one request, the
    /// list of the pages' physical addresses, and the device's size and read-only/flush
    /// features as the device itself reports them. A damaged cache would otherwise
    /// refuse good requests, or leave clients waiting, until the next restart.
    func cachesAreIntact() -> Bool {
        guard queue.isIntact, dataPages.isIntact else { return false }
        var held: UInt64 = 0
        for index in 0..<heldCapacity where self.held[index].inUse && self.held[index].page >= 0 {
            let page = self.held[index].page
            guard page < StorageLayout.dataPages, held & (1 << UInt64(page)) == 0 else { return false }
            held |= 1 << UInt64(page)
        }
        guard held & freePages == 0, held | freePages == usablePages else { return false }
        if let driver {
            let registers = driver.registers
            let capacity = UInt64(registers.read32(VirtioMMIO.blockCapacityLow))
                | UInt64(registers.read32(VirtioMMIO.blockCapacityHigh)) << 32
            registers.write32(VirtioMMIO.deviceFeaturesSelect, 0)
            let offered = UInt64(registers.read32(VirtioMMIO.deviceFeatures))
            // The negotiated read-only and flush bits are what the device offers (we
            // accept both whenever offered).
            let mask = VirtioFeature.blockReadOnly | VirtioFeature.blockFlush
            guard driver.state == .ready, driver.capacity == capacity,
                  driver.features & mask == offered & mask else { return false }
        }
        return true
    }

    mutating func handle(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                         state: inout StorageClientState) -> SSROutcome {
        guard cachesAreIntact() else { System.reportFailure() }
        guard let driver else {
            // No driver although a block device is there: our state was damaged (the
            // start-up found it, or would have). Restart and attach again.
            if Self.blockDevicePresent() { System.reportFailure() }
            return .reply(StorageReplyCode.ioError.rawValue)
        }
        switch StorageWire.decode(operation: UInt(operation), words: words, payloadBytes: payload.request.count,
                                  device: driver.info) {
        case .rejected(let code):
            return .reply(code.rawValue)
        case .info:
            let info = StorageWire.infoWords(driver.info)
            return .reply(StorageReplyCode.ok.rawValue, info.0, info.1)
        case .request(let request):
            if request.kind == .flush && !driver.hasWriteCache {
                return .reply(StorageReplyCode.ok.rawValue)  // nothing is cached: already durable
            }
            return accept(request, payload: payload, client: client, state: &state)
        }
    }

    mutating func accept(_ request: StorageRequest, payload: SSRPayload, client: TaskID,
                         state: inout StorageClientState) -> SSROutcome {
        let requestID = SSRServer<StorageService>.currentRequestID
        let redelivered = find(client).flatMap { index in
            !held[index].delivered && requestID != 0 && state.requestID == requestID ? index : nil
        }
        guard let index = redelivered ?? freeEntry() else { return .reply(StorageReplyCode.busy.rawValue) }
        // The data as it arrived must match the check its client computed over it. The
        // kernel copies a message exactly, so a mismatch is the client's (a fault in the
        // client, or a hostile one): it is told `badRequest`. Restarting for it, to rule
        // out a fault of ours, let any client restart storage at will, and a fault in fs
        // restart storage too. Damage to our own copy of the data is ours, and is caught
        // before the device gets it (`submitQueued`).
        if request.kind == .write {
            let data = UnsafeRawBufferPointer(rebasing: payload.request.prefix(request.byteCount))
            guard data.count == request.byteCount,
                  StorageWire.dataCheck(sector: request.sector, data: data) == request.check else {
                return .reply(StorageReplyCode.badRequest.rawValue)
            }
        }
        var page = -1
        if request.kind != .flush {
            guard freePages != 0 else { return .reply(StorageReplyCode.busy.rawValue) }
            page = freePages.trailingZeroBitCount
            freePages &= ~(1 << UInt64(page))
            if request.kind == .write, let data = payload.request.baseAddress {
                (pages + page * StorageLayout.pageBytes).copyMemory(from: data, byteCount: request.byteCount)
            }
        }
        if redelivered != nil {
            // Recorded in the SSR before the crash and queued by the rebuild already;
            // the message (sealed by the kernel) must say the same, and brings the check.
            let recorded = held[index].request
            guard recorded.kind == request.kind, recorded.sector == request.sector, recorded.count == request.count
            else { System.reportFailure() }
            held[index].request = request
            held[index].page = page
            held[index].delivered = true
        } else {
            let arrival = queue.takeArrival()
            state.accept(request, id: requestID, arrival: arrival)
            SSRServer<StorageService>.checkpoint(state)
            held[index] = HeldRequest(inUse: true, client: client, request: request, arrival: arrival, page: page,
                                      delivered: true)
            try? queue.insert(StorageClientID(rawValue: client.rawValue), priority: request.priority, arrival: arrival)
        }
        submitQueued()
        return .deferred
    }

    func pageCheck(_ page: Int, sector: UInt64, bytes: Int) -> UInt32 {
        StorageWire.dataCheck(sector: sector,
                              data: UnsafeRawBufferPointer(start: pages + page * StorageLayout.pageBytes, count: bytes))
    }

    /// Hands the most urgent delivered requests to the device while it has room.
    mutating func submitQueued() {
        guard driver != nil else { return }
        var rank = 0
        while driver!.canSubmit, let entry = queue.entry(rank: rank) {
            guard let index = find(TaskID(rawValue: entry.client.rawValue)) else {
                queue.remove(entry.client)  // nobody holds it: a stale entry
                continue
            }
            guard held[index].delivered else {
                rank += 1  // its data comes with the re-delivery
                continue
            }
            queue.remove(entry.client)
            let request = held[index].request
            let page = held[index].page
            // The data must still be what the client sent, for the sector it named: a
            // fault since it arrived must not reach the disk.
            if request.kind == .write && pageCheck(page, sector: request.sector, bytes: request.byteCount) != request.check {
                System.reportFailure()
            }
            do throws(StorageDeviceError) {
                try driver!.submit(tag: UInt16(index), kind: request.kind, sector: request.sector,
                                   dataPhysical: page >= 0 ? dataPages.address(ofPage: page) ?? 0 : 0,
                                   byteCount: request.byteCount)
                held[index].submitted = true
            } catch {
                // Every request was checked against the device when it arrived, and we
                // asked whether there was room: a refusal (a page that is not ours among
                // them) means our own state is wrong. A restart resets the device and
                // submits everything again.
                System.reportFailure()
            }
        }
    }

    /// Answers held request `index`, which the device completed with `code` after being
    /// asked `asked` (read back from DMA memory; nil: not this request's shape at all):
    /// the SSR commit and the reply together. Then frees it.
    mutating func finish(_ index: Int, code: StorageReplyCode, asked: DeviceRequest?) {
        let entry = held[index]
        if !entry.abandoned {
            let data = UnsafeRawBufferPointer(start: entry.page >= 0 ? pages + entry.page * StorageLayout.pageBytes : nil,
                                              count: entry.page >= 0 ? StorageLayout.pageBytes : 0)
            let dataPhysical = entry.page >= 0 ? dataPages.address(ofPage: entry.page) ?? 0 : 0
            _ = try? SSRServer<StorageService>.complete(entry.client, payload: data) { state in
                // End to end: the device must have been asked exactly what the client's
                // record asks, into this request's page; otherwise a fault sent it
                // elsewhere, and the data check would vouch for whatever bytes it left.
                // Restart: the kernel delivers the request again.
                guard let recorded = state.outstanding, let asked,
                      asked == DeviceRequest(asking: recorded, dataPhysical: dataPhysical) else {
                    System.reportFailure()
                }
                state.complete(succeeded: code == .ok)
                guard recorded.kind == .read && code == .ok else { return .reply(code.rawValue) }
                let check = pageCheck(entry.page, sector: recorded.sector, bytes: recorded.byteCount)
                return .reply(code: code.rawValue, words: (UInt(check), 0), length: recorded.byteCount)
            }
        }
        release(index)
    }

    /// Frees held request `index` and its page (answered, or its client ended).
    mutating func release(_ index: Int) {
        if held[index].page >= 0 { freePages |= 1 << UInt64(held[index].page) }
        held[index] = HeldRequest()
    }

    mutating func notified(bits: UInt) {
        guard driver != nil else { return }
        _ = driver!.acknowledgeInterrupt()
        var failed = false
        let held = self.held
        let capacity = heldCapacity
        do throws(StorageDeviceError) {
            _ = try driver!.collect { completion in
                let tag = Int(completion.tag)
                guard tag < capacity, held[tag].inUse, held[tag].submitted else { return }
                held[tag].submitted = false
                completions.append((tag, completion.status.replyCode, completion.asked))
            }
        } catch {
            failed = true
        }
        while let (index, code, asked) = completions.popLast() {
            finish(index, code: code, asked: asked)
        }
        if failed || driver?.deviceNeedsReset == true { recoverDevice() }
        submitQueued()
        try? System.acknowledgeInterrupt(slot)
    }

    /// The device broke the protocol: reset it and queue again what it was doing.
    mutating func recoverDevice() {
        do throws(StorageDeviceError) {
            try driver!.initialize()
        } catch {
            System.reportFailure()
        }
        for index in 0..<heldCapacity where held[index].inUse && held[index].submitted {
            held[index].submitted = false
            if held[index].abandoned {
                release(index)
                continue
            }
            try? queue.insert(StorageClientID(rawValue: held[index].client.rawValue),
                              priority: held[index].request.priority, arrival: held[index].arrival)
        }
    }

    mutating func clientEnded(client: TaskID, state: StorageClientState?) {
        queue.remove(StorageClientID(rawValue: client.rawValue))
        while let index = find(client) {
            held[index].abandoned = true
            // One the device still works on keeps its page until it completes.
            if !held[index].submitted { release(index) }
        }
    }

    mutating func replayPayload(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                                state: StorageClientState, reply: SSRReply) -> Int? {
        // A read's data was not cached with its reply: read it again.
        operation == StorageOperation.read.rawValue && reply.code == UInt64(StorageReplyCode.ok.rawValue) ? nil : 0
    }
}

/// Completions collected from the device, answered after `collect` returns.
nonisolated(unsafe) var completions: [(Int, StorageReplyCode, DeviceRequest?)] = []

@main
struct StorageServer {
    static func main() {
        var server = SSRServer(service: StorageService())
        server.run()
    }
}
