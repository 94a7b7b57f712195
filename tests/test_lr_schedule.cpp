// The learning rate is a pure function of the step.
#include <gtest/gtest.h>

#include <cmath>

#include "train/lr_schedule.h"

using namespace resnet;

TEST(LrSchedule, PapersStepScheduleDividesByTenAt32kAnd48k) {
  TrainConfig t;  // defaults: 0.1, milestones 32000/48000
  EXPECT_DOUBLE_EQ(learning_rate(t, 0, 64000), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(t, 31999, 64000), 0.1);
  EXPECT_NEAR(learning_rate(t, 32000, 64000), 0.01, 1e-15);
  EXPECT_NEAR(learning_rate(t, 47999, 64000), 0.01, 1e-15);
  EXPECT_NEAR(learning_rate(t, 48000, 64000), 0.001, 1e-15);
  EXPECT_NEAR(learning_rate(t, 63999, 64000), 0.001, 1e-15);
}

TEST(LrSchedule, ConstantWarmupIsThePapers001ForResNet110) {
  TrainConfig t;
  t.lr_schedule.warmup = "constant";
  t.lr_schedule.warmup_steps = 400;
  t.lr_schedule.warmup_lr = 0.01;
  EXPECT_DOUBLE_EQ(learning_rate(t, 0, 64000), 0.01);
  EXPECT_DOUBLE_EQ(learning_rate(t, 399, 64000), 0.01);
  EXPECT_DOUBLE_EQ(learning_rate(t, 400, 64000), 0.1);
  EXPECT_NEAR(learning_rate(t, 32000, 64000), 0.01, 1e-15);
}

TEST(LrSchedule, LinearWarmupRampsToTheBaseRate) {
  TrainConfig t;
  t.lr_schedule.warmup = "linear";
  t.lr_schedule.warmup_steps = 10;
  EXPECT_NEAR(learning_rate(t, 0, 100), 0.01, 1e-15);
  EXPECT_NEAR(learning_rate(t, 4, 100), 0.05, 1e-15);
  EXPECT_NEAR(learning_rate(t, 9, 100), 0.1, 1e-15);
  EXPECT_NEAR(learning_rate(t, 10, 100), 0.1, 1e-15);
}

TEST(LrSchedule, CosineGoesFromLrToMinLr) {
  TrainConfig t;
  t.lr_schedule.type = "cosine";
  t.lr_schedule.min_lr = 0.001;
  EXPECT_NEAR(learning_rate(t, 0, 1000), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(t, 500, 1000), 0.001 + 0.099 * 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(t, 1000, 1000), 0.001, 1e-12);
  t.lr_schedule.warmup = "linear";
  t.lr_schedule.warmup_steps = 100;
  EXPECT_NEAR(learning_rate(t, 100, 1000), 0.1, 1e-12);  // cosine starts after warm-up
  EXPECT_NEAR(learning_rate(t, 550, 1000), 0.001 + 0.099 * 0.5, 1e-12);
}

TEST(LrSchedule, LengthInEpochsOrIterations) {
  TrainConfig t;
  t.iterations = 500;
  EXPECT_EQ(total_steps(t, 390), 500);
  t.epochs = 2.5;
  EXPECT_EQ(total_steps(t, 390), 975);
}
