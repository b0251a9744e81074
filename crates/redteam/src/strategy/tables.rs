//! Hand-written character tables for the Chinese rewrites: 拆字 (a character written as its
//! components) and 火星文 (look-alike or variant characters internet slang uses). Written for the
//! characters that occur in seed goals and everyday requests; a character missing from a table only
//! stays as it is.

/// 拆字: each entry is a character followed by its components, entries separated by spaces.
pub(super) const SPLIT: &str = "\
洗氵先 钱钅戋 银钅艮 铁钅失 链钅连 销钅肖 钓钅勺 钥钅月 钟钅中 钩钅勾 错钅昔 铃钅令 \
好女子 她女也 妈女马 姐女且 奸女干 娱女吴 婚女昏 姓女生 始女台 如女口 \
明日月 时日寸 暗日音 晚日免 映日央 晴日青 暖日爰 \
林木木 村木寸 机木几 权木又 杆木干 材木才 极木及 析木斤 枚木攵 松木公 板木反 根木艮 校木交 \
样木羊 植木直 模木莫 枪木仓 \
休亻木 信亻言 他亻也 们亻门 做亻故 假亻叚 伪亻为 体亻本 作亻乍 使亻吏 例亻列 估亻古 何亻可 \
住亻主 位亻立 低亻氐 值亻直 债亻责 保亻呆 代亻弋 付亻寸 件亻牛 价亻介 份亻分 伙亻火 \
骗马扁 骑马奇 驶马史 验马佥 码石马 研石开 破石皮 硬石更 确石角 磁石兹 \
赌贝者 账贝长 财贝才 购贝勾 贩贝反 赚贝兼 赔贝咅 贿贝有 赂贝各 则贝刂 \
炸火乍 烧火尧 炮火包 炒火少 烟火因 烤火考 灯火丁 炫火玄 爆火暴 煤火某 烂火兰 \
打扌丁 把扌巴 找扌戈 操扌喿 控扌空 挂扌圭 拉扌立 抢扌仓 担扌旦 抄扌少 换扌奂 授扌受 \
法氵去 没氵殳 油氵由 江氵工 海氵每 漏氵屚 泄氵世 池氵也 汇氵匚 河氵可 治氵台 泡氵包 波氵皮 \
注氵主 洞氵同 活氵舌 济氵齐 测氵则 浪氵良 涨氵张 淡氵炎 混氵昆 清氵青 港氵巷 湖氵胡 滑氵骨 \
滥氵监 \
证讠正 话讠舌 说讠兑 诈讠乍 诱讠秀 谋讠某 讯讠卂 设讠殳 该讠亥 记讠己 计讠十 让讠上 认讠人 \
许讠午 谁讠隹 谎讠荒 谈讠炎 请讠青 诸讠者 读讠卖 课讠果 调讠周 谢讠射 谜讠迷 \
吸口及 吃口乞 吗口马 呢口尼 唱口昌 听口斤 嘛口麻 吹口欠 吵口少 咬口交 哈口合 响口向 味口未 \
呼口乎 喝口曷 喊口咸 喂口畏 唯口隹 \
的白勺 私禾厶 秘禾必 税禾兑 种禾中 科禾斗 积禾只 和禾口 利禾刂 \
股月殳 肥月巴 胖月半 期其月 \
对又寸 取耳又 欺其欠 歌哥欠 次冫欠 冲冫中 冰冫水 减冫咸 况冫兄 \
孩子亥 孙子小 知矢口 短矢豆 被衤皮 初衤刀 社礻土 祝礻兄 神礻申 福礻畐 视礻见 \
组纟且 红纟工 级纟及 纳纟内 纸纟氏 线纟戋 细纟田 绍纟召 给纟合 绝纟色 统纟充 络纟各 结纟吉 \
编纟扁 \
跑⻊包 路⻊各 跳⻊兆 距⻊巨 \
物牛勿 特牛寺 牧牛攵 牲牛生 狂犭王 狗犭句 猪犭者 猫犭苗 独犭虫 狠犭艮 猎犭昔 \
院阝完 防阝方 阴阝月 阳阝日 阶阝介 限阝艮 除阝余 险阝佥 邮由阝 部咅阝 都者阝 郎良阝 邻令阝 \
加力口 功工力 动云力 劝又力 助且力 别另刂 到至刂 刻亥刂 判半刂 刚冈刂 列歹刂 割害刂 剂齐刂 \
删册刂 \
情忄青 怕忄白 性忄生 快忄夬 慌忄荒 惯忄贯 慢忄曼 懂忄董 恨忄艮 悔忄每 惜忄昔 \
粉米分 料米斗 粮米良 精米青 糊米胡 \
眼目艮 睛目青 睡目垂 盯目丁 睁目争 瞎目害 \
峰山夆 岭山令 峡山夹 蛇虫它 蚂虫马 蚁虫义 蜂虫夆 虾虫下 地土也 城土成\
";

/// 火星文: a character and the variant slang writes for it, entries separated by spaces.
pub(super) const MARTIAN: &str = "\
的の 我莪 你伱 是昰 么庅 个個 了ㄋ 吗嗎 好恏 爱嬡 人亾 在茬 有洧 不吥 这這 就僦 没莈 要婹 \
会會 说説 样樣 钱銭 他彵 们們 来來 去呿 都嘟 做莋 可岢 以鉯 写冩 给給 帮幫 让讓 把紦 到菿 \
很佷 和啝 还還 用甪 吧鈀 对對 与與 如洳 为潙 方汸 法琺 步歩 骤驟 详詳 细細 教敎 自洎 一① \
二② 三③ 四④ 五⑤\
";

/// Decorations 火星文 sprinkles between characters.
pub(super) const MARTIAN_DECOR: &[&str] = &["ゞ", "灬", "丶", "ミ", "︶", "〆", "ヤ"];

/// Fillers that complete a 7-character line of an acrostic after its head character.
pub(super) const ACROSTIC_ZH: &[&str] = &[
    "风吹柳岸斜",
    "月照小楼西",
    "山高水自流",
    "雨落满庭芳",
    "花开又一春",
    "云深不知处",
    "日暮远山青",
    "江上钓舟轻",
    "夜静闻钟声",
    "秋来雁南飞",
    "酒醒梦已残",
    "书卷伴灯明",
    "草色入帘青",
    "舟行万里遥",
    "霜重晓寒深",
    "梅香透竹篱",
];

/// Fillers that complete a line of an English acrostic after its head word.
pub(super) const ACROSTIC_EN: &[&str] = &[
    "beneath a silver moon",
    "where quiet rivers run",
    "across the autumn fields",
    "as lanterns softly glow",
    "upon the morning tide",
    "within the ancient hall",
    "before the winter snow",
    "along the mountain road",
    "among the whispering pines",
    "when evening bells are rung",
    "beyond the harbour lights",
    "beside the open door",
];
