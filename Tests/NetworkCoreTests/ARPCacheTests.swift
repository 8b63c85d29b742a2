import NetworkCore
import Testing

@Suite struct ARPCacheTests {
    func address(_ n: Int) -> IPv4Address { IPv4Address(10, 0, 2, UInt8(n)) }
    func mac(_ n: Int) -> MACAddress { MACAddress(0x52, 0x54, 0, 0, 0, UInt8(n)) }

    @Test func insertsAndLooksUp() {
        var cache = ARPCache()
        #expect(cache.count == 0)
        #expect(cache.lookup(address(2), now: 0) == nil)
        cache.insert(address(2), mac(2), now: 100)
        cache.insert(address(3), mac(3), now: 100)
        #expect(cache.count == 2)
        #expect(cache.lookup(address(2), now: 100) == mac(2))
        #expect(cache.lookup(address(3), now: 200) == mac(3))
        #expect(cache.lookup(address(4), now: 200) == nil)
    }

    @Test func updatesAnExistingEntryInPlace() {
        var cache = ARPCache()
        cache.insert(address(2), mac(2), now: 0)
        cache.insert(address(2), mac(9), now: 5)
        #expect(cache.count == 1)
        #expect(cache.lookup(address(2), now: 5) == mac(9))
    }

    @Test func entriesExpireAfterTheLifetimeUnlessConfirmed() {
        var cache = ARPCache()
        #expect(cache.lifetime == 600_000_000)
        cache.lifetime = 1000
        cache.insert(address(2), mac(2), now: 5000)
        #expect(cache.lookup(address(2), now: 6000) == mac(2))
        #expect(cache.lookup(address(2), now: 6001) == nil)
        cache.insert(address(2), mac(2), now: 5900)
        #expect(cache.lookup(address(2), now: 6900) == mac(2), "confirming renews the entry")
        #expect(cache.lookup(address(2), now: 10) == mac(2), "a clock behind the entry does not expire it")
    }

    @Test func evictsTheLeastRecentlyConfirmedWhenFull() {
        var cache = ARPCache()
        for n in 0..<ARPCache.capacity {
            cache.insert(address(n + 1), mac(n + 1), now: UInt64(100 + n))
        }
        #expect(cache.count == ARPCache.capacity)
        // Looking an entry up does not protect it; confirming it does.
        #expect(cache.lookup(address(2), now: 150) == mac(2))
        cache.insert(address(1), mac(1), now: 200)
        cache.insert(address(50), mac(50), now: 201)
        #expect(cache.count == ARPCache.capacity)
        #expect(cache.lookup(address(50), now: 201) == mac(50))
        #expect(cache.lookup(address(2), now: 201) == nil, "the oldest confirmation (101) went")
        #expect(cache.lookup(address(1), now: 201) == mac(1))
        for n in 3...ARPCache.capacity {
            #expect(cache.lookup(address(n), now: 201) == mac(n))
        }
        cache.insert(address(51), mac(51), now: 202)
        #expect(cache.lookup(address(3), now: 202) == nil, "then the next oldest (102)")
    }

    @Test func removeAllEmptiesTheCache() {
        var cache = ARPCache()
        cache.insert(address(2), mac(2), now: 0)
        cache.insert(address(3), mac(3), now: 0)
        cache.removeAll()
        #expect(cache.count == 0)
        #expect(cache.lookup(address(2), now: 0) == nil)
        cache.insert(address(3), mac(4), now: 0)
        #expect(cache.lookup(address(3), now: 0) == mac(4))
        #expect(cache.count == 1)
    }
}
