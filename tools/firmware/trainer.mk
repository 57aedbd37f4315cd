# trainer.mk - the on-device trainer's closed loop on the emulator, included by
# the Makefile. Kept apart from the lock-in kernels' rules.
#
#   train-m0-Os   Cortex-M0 (ARMv6-M) on QEMU -M microbit (nRF51: 256 KiB flash, 16 KiB RAM)
#   train-m4-O2   Cortex-M4 on QEMU -M mps2-an386
#
# Each image trains a gate (XOR) against an integer device model with nothing but the
# image, checks its loss trajectory word for word against the Python model's
# (gen_trainer_config.py), and prints PASS train-<target>: <task> found in N iterations.

TRAIN_TARGETS := m0-Os m4-O2
TRAIN_CPU_m0    := -mcpu=cortex-m0 -mthumb
TRAIN_CPU_m4    := -mcpu=cortex-m4 -mthumb -mfloat-abi=soft
TRAIN_BOARD_m0  := microbit
TRAIN_BOARD_m4  := mps2-an386
TRAIN_LD_m0     := microbit.ld
TRAIN_LD_m4     := mps2.ld
# The trainer and everything it calls (no harness, no device model): its flash is the report's.
TRAIN_CORE := hge_trainer hge_corrsig hge_fixmath hge_synth hge_board hge_lockin hge_nco hge_sine_table hge_update

$(BUILD)/trainer_config.h: gen_trainer_config.py $(ROOT)/hge_embedded/reference/trainer_fixed.py \
		$(ROOT)/hge_embedded/reference/toy_device.py $(ROOT)/hge_embedded/reference/fixed.py
	$(PYTHON) gen_trainer_config.py --out $(BUILD)

# $(1): cpu (m0, m4); $(2): optimisation
define TRAIN_RULES
$(BUILD)/train-$(1)-$(2)/trainer.elf: $(wildcard $(CSRC)/*.c $(CSRC)/*.h) trainer_main.c semihost.c semihost.h startup.c $(TRAIN_LD_$(1)) $(BUILD)/trainer_config.h
	@mkdir -p $(BUILD)/train-$(1)-$(2)
	@for f in $(TRAIN_CORE); do \
	  $(CC) $(WARN) $(TRAIN_CPU_$(1)) -$(2) -fstack-usage -ffunction-sections -fdata-sections -I$(CSRC) \
	    -c $(CSRC)/$$$$f.c -o $(BUILD)/train-$(1)-$(2)/$$$$f.o || exit 1; done
	@for f in trainer_main semihost startup; do \
	  $(CC) $(WARN) $(TRAIN_CPU_$(1)) -$(2) -fstack-usage -ffunction-sections -fdata-sections -I$(CSRC) -I$(BUILD) \
	    -DTARGET_NAME='"$(1)-$(2)"' -c $$$$f.c -o $(BUILD)/train-$(1)-$(2)/$$$$f.o || exit 1; done
	$(CC) $(TRAIN_CPU_$(1)) -nostdlib -nostartfiles -Wl,--gc-sections -T $(TRAIN_LD_$(1)) \
	  $(addprefix $(BUILD)/train-$(1)-$(2)/,$(addsuffix .o,$(TRAIN_CORE) trainer_main semihost startup)) -lc -lgcc \
	  -Wl,-Map=$(BUILD)/train-$(1)-$(2)/trainer.map -o $$@

$(BUILD)/train-$(1)-$(2)/run.log: $(BUILD)/train-$(1)-$(2)/trainer.elf
	@timeout 300 $(QEMU) -M $(TRAIN_BOARD_$(1)) $(QEMU_FLAGS) -kernel $$< > $$@.tmp 2>&1; \
	  status=$$$$?; grep -v '^LOSS' $$@.tmp; grep -c '^LOSS' $$@.tmp | sed 's/^/LOSS lines: /'; \
	  if [ $$$$status -ne 0 ] || ! grep -q '^PASS train-' $$@.tmp; then echo "FAIL train-$(1)-$(2) (exit $$$$status)"; exit 1; fi; \
	  mv $$@.tmp $$@
endef
$(foreach t,$(TRAIN_TARGETS),$(eval $(call TRAIN_RULES,$(word 1,$(subst -, ,$(t))),$(word 2,$(subst -, ,$(t))))))

TRAIN_LOGS := $(foreach t,$(TRAIN_TARGETS),$(BUILD)/train-$(t)/run.log)

.PHONY: train-check train-size
train-check: $(TRAIN_LOGS)
	@echo "trainer check: $(words $(TRAIN_TARGETS)) closed-loop targets passed"

train-size: train-check
	@$(PYTHON) trainer_size_report.py $(BUILD) $(TRAIN_TARGETS)

check: train-check
size: train-size
