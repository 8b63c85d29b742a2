# Curio's build, run and test entry points. `make help` lists them.
#
# SwiftPM compiles every module (for the host in `swift test`, and cross-compiled
# for riscv64 with toolset-riscv64.json); this Makefile links the riscv64 objects
# into the kernel and the programs with our own linker scripts, packs the programs
# into the boot image with mkimage, and runs QEMU.

SWIFT      ?= swift
# e2fsprogs live in /usr/sbin, which is not on every user's PATH.
export PATH := $(PATH):/usr/sbin:/sbin
TOOLCHAIN  ?= $(dir $(shell readlink -f $(shell command -v swift)))
LLD        := $(TOOLCHAIN)ld.lld
OBJCOPY    := $(TOOLCHAIN)llvm-objcopy
QEMU       ?= qemu-system-riscv64
BUILD      := build
TRIPLE     := riscv64-none-none-eabi
RV_SCRATCH := .build-riscv64
RV_OUT     := $(RV_SCRATCH)/$(TRIPLE)/release
EMBEDDED_LIB := $(TOOLCHAIN)../lib/swift/embedded/$(TRIPLE)
RV_BUILD   := $(SWIFT) build -c release --triple $(TRIPLE) --toolset toolset-riscv64.json --scratch-path $(RV_SCRATCH)

# Programs in the boot image: the SwiftPM module of each (system.toml names them).
PROGRAMS   := ConsoleServer Shell Crashme PingServer Bench Binder RogueServer TimerServer TimerClient TimerTest \
              ConfigServer StorageServer FileSystemServer FileSystemTest FileSystemBench
# Libraries linked into every program (--gc-sections drops what a program does not use).
USER_LIBRARIES := UserArch Freestanding CurioUser CurioABI ConsoleAPI SSRFormat SSRServer TimerAPI TimerCore \
                  ConfigAPI StorageCore StorageAPI FileSystemCore Ext2 FileSystemAPI
# Every module cross-built for riscv64 (the embedded build of each is part of `make test`).
EMBEDDED_MODULES := CurioABI KernelCore Kernel CurioUser ConsoleAPI SSRFormat SSRServer TimerAPI TimerCore \
                    ConfigAPI StorageCore StorageAPI FileSystemCore Ext2 FileSystemAPI $(PROGRAMS)
KERNEL_LIBRARIES := KernelArch Freestanding Kernel KernelCore CurioABI

MEMORY     ?= 128M
QEMU_FLAGS := -machine virt -m $(MEMORY) -smp 1 -nographic -bios default \
              -global virtio-mmio.force-legacy=false -kernel $(BUILD)/kernel.elf
APPEND     := $(if $(CMDS),-append "$(CMDS)")

# The disk `make run` boots with: by default an ext2 image built from the disk/
# folder (rebuilt only when that folder changes, so your writes stay until then);
# DISK=path/to/image.ext2 boots with your own image instead, and writes to it.
DEFAULT_DISK := $(BUILD)/disk.img
DISK       ?= $(DEFAULT_DISK)
DISK_FLAGS  = -drive file=$(DISK),format=raw,if=none,id=disk0 -device virtio-blk-device,drive=disk0

.PHONY: all help deps build kernel-nossr embedded run debug test test-host test-embedded test-integration bench campaign clean

all: build

help:
	@echo "make run [CMDS='ps; echo hi']  build and boot Curio (CMDS: run these shell commands, then power off)"
	@echo "make run DISK=image.ext2       boot with your own ext2 image (default: build/disk.img from disk/)"
	@echo "make test                     host unit tests, embedded build of every module, QEMU integration tests"
	@echo "make bench                    instruction counts: kernel paths, and fs/storage with vs without SSRs"
	@echo "make campaign [SERVER=timer|fs|storage RUNS=20]  fault-injection campaign against a server"
	@echo "make debug                    boot QEMU halted, waiting for gdb-multiarch"
	@echo "make deps                     install QEMU and the other tools (as root, with apt-get)"

# Install what the build and the tests need. As root we install; otherwise we say how.
DEB_PACKAGES := qemu-system-misc e2fsprogs
deps:
	@missing=""; \
	command -v $(QEMU) >/dev/null || missing="$$missing qemu-system-misc"; \
	command -v mke2fs >/dev/null || missing="$$missing e2fsprogs"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing -- run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

embedded:
	@for module in $(EMBEDDED_MODULES); do \
	  $(RV_BUILD) --target $$module 2>&1 | grep -v -E '^(Building for production|\[[0-9]+/[0-9]+\]|Build of target)' ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done
SHELL := /bin/bash

objects = $(wildcard $(RV_OUT)/$(1).build/*.o)

build: embedded
	@mkdir -p $(BUILD)/programs
	@for program in $(PROGRAMS); do \
	  $(LLD) -T Sources/User/Arch/user.ld --gc-sections -X -o $(BUILD)/programs/$$program.elf \
	    $(foreach lib,$(USER_LIBRARIES),$(RV_OUT)/$(lib).build/*.o) $(RV_OUT)/$$program.build/*.o \
	    $(EMBEDDED_LIB)/libswiftUnicodeDataTables.a || exit 1; \
	done
	@$(SWIFT) build --product mkimage -q
	@$$($(SWIFT) build --show-bin-path)/mkimage --system system.toml --elf-dir $(BUILD)/programs --out $(BUILD)/system.img
	@$(OBJCOPY) -I binary -O elf64-littleriscv --rename-section .data=.bootimage,alloc,load,readonly,data,contents \
	  $(BUILD)/system.img $(BUILD)/system-image.o
	@$(LLD) -T Sources/Kernel/Arch/kernel.ld --gc-sections -X -o $(BUILD)/kernel.elf \
	  $(foreach lib,$(KERNEL_LIBRARIES),$(RV_OUT)/$(lib).build/*.o) $(BUILD)/system-image.o
	@echo "built $(BUILD)/kernel.elf ($$(stat -c %s $(BUILD)/kernel.elf) bytes)"

$(DEFAULT_DISK): $(shell find disk -type f 2>/dev/null)
	@mkdir -p $(BUILD)
	@rm -f $@
	@mke2fs -q -t ext2 -b 1024 -L curio -d disk $@ 32M
	@echo "built $@ from disk/ (ext2, 32 MiB)"

run: deps build $(if $(filter $(DEFAULT_DISK),$(DISK)),$(DEFAULT_DISK))
	@test -f "$(DISK)" || { echo "no disk image at $(DISK)"; exit 1; }
	@$(QEMU) $(QEMU_FLAGS) $(DISK_FLAGS) $(APPEND)

debug: deps build $(if $(filter $(DEFAULT_DISK),$(DISK)),$(DEFAULT_DISK))
	@echo "QEMU is waiting for gdb. In another terminal:"
	@echo "  gdb-multiarch $(BUILD)/kernel.elf -ex 'target remote :1234'"
	@echo "(apt-get install gdb-multiarch if missing; 'add-symbol-file $(BUILD)/programs/Shell.elf' for a program)"
	@$(QEMU) $(QEMU_FLAGS) $(DISK_FLAGS) $(APPEND) -s -S

test: deps test-host build test-integration

test-host:
	$(SWIFT) test --skip IntegrationTests

test-integration: build
	CURIO_KERNEL=$(abspath $(BUILD)/kernel.elf) $(SWIFT) test --filter IntegrationTests

# A fault-injection campaign: RUNS injections of every fault kind into SERVER while
# its clients run, and a table of outcomes per fault kind (deterministic: -icount).
SERVER ?= timer
RUNS   ?= 20
campaign: deps build
	$(SWIFT) run -q curio-campaign $(SERVER) $(RUNS) $(abspath $(BUILD)/kernel.elf)

# The no-SSR baseline of the filesystem benchmarks: the same program binaries and
# kernel objects, packed with `--without-ssr fs,storage` (those servers then keep
# their clients' state in their own memory and are not restartable).
NO_SSR_SERVERS := fs,storage
kernel-nossr: build
	@$$($(SWIFT) build --show-bin-path)/mkimage --system system.toml --elf-dir $(BUILD)/programs \
	  --out $(BUILD)/system-nossr.img --without-ssr $(NO_SSR_SERVERS)
	@$(OBJCOPY) -I binary -O elf64-littleriscv --rename-section .data=.bootimage,alloc,load,readonly,data,contents \
	  $(BUILD)/system-nossr.img $(BUILD)/system-image-nossr.o
	@$(LLD) -T Sources/Kernel/Arch/kernel.ld --gc-sections -X -o $(BUILD)/kernel-nossr.elf \
	  $(foreach lib,$(KERNEL_LIBRARIES),$(RV_OUT)/$(lib).build/*.o) $(BUILD)/system-image-nossr.o
	@echo "built $(BUILD)/kernel-nossr.elf (without SSRs: $(NO_SSR_SERVERS))"

# The QEMU plugin that counts the filesystem benchmarks' instructions without the
# idle loop (see Sources/Tools/BenchPlugin).
MARKS_PLUGIN := $(BUILD)/instruction-marks.so
$(MARKS_PLUGIN): Sources/Tools/BenchPlugin/instruction-marks.c
	@mkdir -p $(BUILD)
	@$(TOOLCHAIN)clang -O2 -shared -fPIC -fvisibility=hidden -Wall -Wextra -o $@ $<

bench: deps build kernel-nossr $(MARKS_PLUGIN)
	$(SWIFT) run -c release curio-bench $(abspath $(BUILD)/kernel.elf) $(abspath $(BUILD)/kernel-nossr.elf) \
	  $(abspath $(MARKS_PLUGIN))

clean:
	rm -rf $(BUILD) $(RV_SCRATCH)
