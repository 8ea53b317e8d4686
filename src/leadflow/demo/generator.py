"""Seeded generator of realistic leads, with planted duplicates and their ground truth.

Used by the demo organisation, the tests and the benchmarks. Everything is driven by one
``random.Random(seed)``: the same arguments give the same leads, byte for byte.

* People are ~75% Chinese (surnames weighted like their real frequency, given names of one or
  two characters from a pool of 300+) and ~25% English. Each person has a mainland mobile (or,
  for some English leads, a landline or an international number) and an email that are unique
  by construction, derived from the person id, so distinct people never share them.
* People work at companies of a :class:`CompanyPool`, which carries the firmographics
  (industry, headcount, region/province/city, domain, address) the enrichment table is loaded
  from.
* A fraction ``dup_rate`` of the records are *duplicates*: an earlier person captured again,
  as another source would write them. Each duplicate names its variant ``kind`` (see
  :data:`DUPLICATE_KINDS`) and carries only the evidence of that kind, so dedup quality can be
  measured per kind against the ground-truth ``person_id``.

Generation streams (an iterator, records never all in memory); what it keeps is a bounded
reservoir of earlier people to duplicate (20,000, one packed string each) and, in the company
pool, the company email addresses already handed out. Pure generation runs at roughly
175,000-210,000 records a second on one core of the shared 2-core reference machine (the lower
figure with a 50,000-company pool): pools are precomputed, field presence is one pre-drawn
pattern per record, and the hot path is a single function.
"""

from __future__ import annotations

import json
import math
import os
import random
from array import array
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Literal, NamedTuple

__all__ = [
    "DAY_S",
    "DUPLICATE_KINDS",
    "FILE_COLUMNS",
    "FILE_HEADERS",
    "ORIGINAL",
    "City",
    "Company",
    "CompanyPool",
    "GeneratedLead",
    "Industry",
    "bad_rows",
    "generate_leads",
    "staff_person",
    "write_firmographics",
    "write_lead_file",
]

ORIGINAL = "original"
PHONE_FORMAT = "phone_format"  # (a) same phone in another format, other fields partly missing
EMAIL_CASE = "email_case"  # (b) same email, other case / stray whitespace
NAME_TYPO = "name_typo"  # (c) homophone or one-letter typo + company written differently
NAME_ORDER = "name_order"  # (d) English name as "Smith John" / "Smith, John" + company
ADDRESS_VARIANT = "address_variant"  # (e) no company; same name + city, address re-spelled
FULL_WIDTH = "full_width"  # (f) full-width (全角) phone / email / company

#: Variant kinds of duplicates and their share among duplicates.
DUPLICATE_KINDS: dict[str, float] = {
    PHONE_FORMAT: 0.25,
    EMAIL_CASE: 0.20,
    NAME_TYPO: 0.20,
    NAME_ORDER: 0.10,
    ADDRESS_VARIANT: 0.15,
    FULL_WIDTH: 0.10,
}

DAY_S = 86_400
#: A bound ``random.Random.random``.
Rand = Callable[[], float]


# --------------------------------------------------------------------------- data pools


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Surnames with their approximate share of the population (per mille); the weighting makes
# 王/李/张 as common as in real lists, which is what makes name collisions realistic.
_SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "wang", 71), ("李", "li", 70), ("张", "zhang", 67), ("刘", "liu", 54),
    ("陈", "chen", 45), ("杨", "yang", 31), ("黄", "huang", 22), ("赵", "zhao", 20),
    ("吴", "wu", 20), ("周", "zhou", 19), ("徐", "xu", 13), ("孙", "sun", 12),
    ("马", "ma", 11), ("朱", "zhu", 11), ("胡", "hu", 10), ("郭", "guo", 9.7),
    ("何", "he", 9), ("高", "gao", 8.8), ("林", "lin", 8.6), ("罗", "luo", 8.6),
    ("郑", "zheng", 7.8), ("梁", "liang", 7.5), ("谢", "xie", 6), ("宋", "song", 5.3),
    ("唐", "tang", 5.1), ("许", "xu", 4.9), ("韩", "han", 4.6), ("冯", "feng", 4.4),
    ("邓", "deng", 4.3), ("曹", "cao", 4.2), ("彭", "peng", 4.1), ("曾", "zeng", 4),
    ("肖", "xiao", 4), ("田", "tian", 3.9), ("董", "dong", 3.5), ("袁", "yuan", 3.5),
    ("潘", "pan", 3.4), ("于", "yu", 3.4), ("蒋", "jiang", 3.4), ("蔡", "cai", 3.3),
    ("余", "yu", 3.2), ("杜", "du", 3.2), ("叶", "ye", 3.1), ("程", "cheng", 3),
    ("苏", "su", 2.9), ("魏", "wei", 2.8), ("吕", "lv", 2.8), ("丁", "ding", 2.7),
    ("任", "ren", 2.6), ("沈", "shen", 2.5), ("姚", "yao", 2.4), ("卢", "lu", 2.4),
    ("姜", "jiang", 2.3), ("崔", "cui", 2.2), ("钟", "zhong", 2.2), ("谭", "tan", 2.1),
    ("陆", "lu", 2.1), ("汪", "wang", 2), ("范", "fan", 2), ("金", "jin", 2),
    ("石", "shi", 1.9), ("廖", "liao", 1.9), ("贾", "jia", 1.8), ("夏", "xia", 1.8),
    ("韦", "wei", 1.7), ("付", "fu", 1.7), ("方", "fang", 1.6), ("白", "bai", 1.6),
    ("邹", "zou", 1.6), ("孟", "meng", 1.5), ("熊", "xiong", 1.5), ("秦", "qin", 1.5),
    ("邱", "qiu", 1.5), ("江", "jiang", 1.4), ("尹", "yin", 1.4), ("薛", "xue", 1.3),
    ("闫", "yan", 1.3), ("段", "duan", 1.3), ("雷", "lei", 1.3), ("侯", "hou", 1.2),
    ("龙", "long", 1.2), ("史", "shi", 1.2), ("陶", "tao", 1.1), ("黎", "li", 1.1),
    ("贺", "he", 1.1), ("顾", "gu", 1.1), ("毛", "mao", 1), ("郝", "hao", 1),
    ("龚", "gong", 1), ("邵", "shao", 1), ("万", "wan", 0.9), ("钱", "qian", 0.9),
    ("严", "yan", 0.9), ("覃", "qin", 0.9), ("武", "wu", 0.9), ("戴", "dai", 0.9),
    ("莫", "mo", 0.8), ("孔", "kong", 0.8), ("欧阳", "ouyang", 0.5), ("司马", "sima", 0.1),
    ("诸葛", "zhuge", 0.1), ("上官", "shangguan", 0.1),
)

# Characters of given names. Only those with a homophone in the pool are kept (see
# ``_Pools``), so every Chinese name can receive a homophone typo.
_GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红玲梅飞鹏辉宇浩凯健俊帆帅旭宁欣"
    "晨辰睿博文斌彬然泽轩涵梓萱诺依琳怡雨桐思佳宜晓婷瑶慧颖倩雪琪璐露莉晶毅峰岩波宏志国建新"
    "春海林森鑫昊天成龙亮庆云伦荣昌冰雁燕蓉娅琴岚薇茜蕾婕嘉欢雯洁悦鸿程腾振家乐安康宝贵福祥"
    "瑞豪彤宸泓瀚澜澄湘漫溪淼锦绣秋冬夏阳耀星月晴航远达通顺利丰盛茂兴敬恒信义礼智仁勤谦德馨"
    "坤乾元亨贞美善诚忠孝和谐雅淑贤惠婉柔娴芬芸芝若汐沫菲菁蓓茹莎娇媛姿姗嫣妍妮婵娥霏霓霖琼"
    "瑾瑜璇珊琦璟玥珏瑗琰琬铭锋钧钰锐镇钢铎铮骏驰骁鹤鹭鸣凤麟彪虎豹勋功武威卫兵胜雄侠猛坚立"
    "力励黎理炜玮桦骅俐婧靖君垒扬永咏捷韬滔滨蔷苹纲晖徽闵珉方舫纳虹亭庭铃龄昕语羽琛臣皓灏铠"
    "恺朋柏闻剑致蕙卉潮峻竣淇祺斯丝萌筱学凡钦亦奕艺逸忆益仪翊轶熠懿一以伊意溢莹盈瑛樱迎影滢"
    "加珈迦竞境经京精景劲芊潇萧笑啸校铭名茗民旻闽纹汶昀允韵蕴运筠匀"
)

_ENGLISH_FIRST = _words(
    "James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel "
    "Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy "
    "Ronald Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin "
    "Scott Brandon Benjamin Samuel Gregory Alexander Frank Patrick Raymond Jack Dennis Jerry "
    "Tyler Aaron Jose Adam Nathan Henry Douglas Zachary Peter Kyle Ethan Walter Noah Jeremy "
    "Christian Keith Roger Terry Gerald Harold Sean Austin Carl Arthur Lawrence Dylan Jesse "
    "Jordan Bryan Billy Joe Bruce Gabriel Logan Albert Willie Alan Juan Wayne Elijah Randy Roy "
    "Vincent Ralph Eugene Russell Bobby Mason Philip Louis Oliver Liam Lucas Owen Leo Hugo "
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty "
    "Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah "
    "Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Angela Shirley Anna Brenda Pamela Emma "
    "Nicole Helen Samantha Katherine Christine Debra Rachel Carolyn Janet Catherine Maria "
    "Heather Diane Ruth Julie Olivia Joyce Virginia Victoria Kelly Lauren Christina Joan "
    "Evelyn Judith Megan Andrea Cheryl Hannah Jacqueline Martha Gloria Teresa Ann Sara Madison "
    "Frances Kathryn Janice Jean Abigail Alice Judy Sophia Grace Denise Amber Doris Marilyn "
    "Danielle Beverly Isabella Theresa Diana Natalie Brittany Charlotte Marie Kayla Alexis Lily "
    "Chloe Zoe Ava Mia Ella Ruby Freya Isla Poppy Harriet"
)

_ENGLISH_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen "
    "Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez "
    "Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy "
    "Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox "
    "Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price "
    "Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell "
    "Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan "
    "Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant "
    "Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison "
    "Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker "
    "Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason "
    "Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox "
    "Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan "
    "Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos "
    "Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews "
    "Ray Berry Perkins Hoffman Johnston Matthews Pena Richards Willis Carpenter Lawrence Sandoval"
)

_TITLES_ZH: tuple[tuple[str, float], ...] = (
    ("销售总监", 6), ("市场经理", 6), ("总经理", 6), ("CEO", 3), ("CTO", 2), ("IT经理", 5),
    ("采购经理", 5), ("运营总监", 4), ("产品经理", 5), ("销售经理", 7), ("市场总监", 4),
    ("信息中心主任", 2), ("副总裁", 2), ("董事长", 1), ("财务总监", 2), ("人力资源经理", 3),
    ("项目经理", 5), ("工程师", 6), ("市场专员", 5), ("销售主管", 4), ("客服主管", 2),
    ("数字化负责人", 2), ("创始人", 2), ("行政经理", 2),
)
_TITLES_EN: tuple[tuple[str, float], ...] = (
    ("CEO", 3), ("CTO", 2), ("CIO", 2), ("IT Manager", 5), ("Sales Director", 6),
    ("Marketing Manager", 6), ("Head of Operations", 3), ("VP Sales", 3),
    ("Procurement Manager", 4), ("Product Manager", 4), ("Founder", 2),
    ("Business Development Manager", 5), ("Engineer", 4), ("Analyst", 3),
    ("General Manager", 4), ("Marketing Specialist", 3), ("Account Manager", 4),
)

_PRODUCTS = ("CRM", "CRM", "CRM", "BI", "BI", "营销自动化", "客服系统", "CRM + BI")
_NOTES_ZH = ("希望下周联系", "对价格敏感", "已有竞品在用", "需要报价", "想了解案例",
             "下午方便接电话", "预算在审批中", "先发资料")
_NOTES_EN = ("Please call after 2pm", "Asked for a quote", "Evaluating competitors",
             "Send case studies", "Budget next quarter")
_TAGS_ZH = ("价格敏感", "风格偏好", "高意向", "老客户推荐", "直播观众", "需要案例")
_TAGS_EN = ("webinar", "VIP", "price sensitive", "event", "trial")

# Common Chinese mobile prefixes (the third digit), weighted by how often they are seen.
_MOBILE_PREFIXES = _words(
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 "
    "166 170 173 175 176 177 178 180 181 182 183 185 186 187 188 189 191 198 199 "
    "135 136 137 138 139 138 139 158 159 186 186 188"
)
# Foreign numbers: (country code, area code, leading local digit, scrambled digits after it,
# grouping of the national number).
_FOREIGN: tuple[tuple[str, str, str, int, tuple[int, ...]], ...] = (
    ("1", "415", "5", 6, (3, 3, 4)), ("1", "212", "7", 6, (3, 3, 4)),
    ("1", "650", "3", 6, (3, 3, 4)), ("44", "20", "7", 7, (2, 4, 4)), ("65", "", "91", 6, (4, 4)),
    ("852", "", "96", 6, (4, 4)), ("61", "2", "9", 7, (1, 4, 4)),
)


@dataclass(frozen=True, slots=True)
class City:
    """A city with its province, region, telephone area code and postcode."""

    zh: str
    en: str
    province_zh: str
    province_en: str
    region_zh: str
    region_en: str
    area_code: str
    postcode: str
    districts: tuple[str, ...]
    weight: float
    #: How records write the place: region en, region zh, province en, province zh,
    #: province zh without 省/市, city en, city zh, city zh with 市.
    spellings: tuple[str, ...]

    @property
    def is_municipality(self) -> bool:
        """Beijing, Shanghai, Tianjin, Chongqing are their own province."""
        return self.province_zh == self.zh + "市"


def _city(spec: str, districts: str, weight: float) -> City:
    zh, en, pzh, pen, rzh, ren, area, post = spec.split("|")
    spellings = (ren, rzh, pen, pzh, pzh[:-1], en, zh, zh + "市")
    return City(zh, en, pzh, pen, rzh, ren, area, post, tuple(districts.split()), weight,
                spellings)


_CITIES: tuple[City, ...] = (
    _city("北京|Beijing|北京市|Beijing|华北|North China|010|100000",
          "朝阳区 海淀区 东城区 西城区 丰台区 通州区", 14),
    _city("上海|Shanghai|上海市|Shanghai|华东|East China|021|200000",
          "浦东新区 徐汇区 静安区 长宁区 闵行区 黄浦区", 14),
    _city("深圳|Shenzhen|广东省|Guangdong|华南|South China|0755|518000",
          "南山区 福田区 宝安区 龙岗区 罗湖区", 10),
    _city("广州|Guangzhou|广东省|Guangdong|华南|South China|020|510000",
          "天河区 越秀区 海珠区 番禺区 白云区", 8),
    _city("杭州|Hangzhou|浙江省|Zhejiang|华东|East China|0571|310000",
          "西湖区 滨江区 余杭区 拱墅区 上城区", 8),
    _city("南京|Nanjing|江苏省|Jiangsu|华东|East China|025|210000",
          "鼓楼区 玄武区 建邺区 江宁区", 5),
    _city("苏州|Suzhou|江苏省|Jiangsu|华东|East China|0512|215000",
          "工业园区 姑苏区 吴中区 相城区", 5),
    _city("成都|Chengdu|四川省|Sichuan|西南|Southwest China|028|610000",
          "高新区 武侯区 锦江区 青羊区", 6),
    _city("武汉|Wuhan|湖北省|Hubei|华中|Central China|027|430000",
          "江汉区 武昌区 洪山区 江岸区", 5),
    _city("西安|Xi'an|陕西省|Shaanxi|西北|Northwest China|029|710000",
          "雁塔区 碑林区 未央区", 4),
    _city("重庆|Chongqing|重庆市|Chongqing|西南|Southwest China|023|400000",
          "渝中区 江北区 渝北区 南岸区", 4),
    _city("天津|Tianjin|天津市|Tianjin|华北|North China|022|300000",
          "和平区 河西区 南开区 滨海新区", 3),
    _city("佛山|Foshan|广东省|Guangdong|华南|South China|0757|528000",
          "禅城区 南海区 顺德区", 2),
    _city("青岛|Qingdao|山东省|Shandong|华东|East China|0532|266000",
          "市南区 崂山区 黄岛区", 3),
    _city("长沙|Changsha|湖南省|Hunan|华中|Central China|0731|410000",
          "岳麓区 天心区 开福区", 3),
    _city("郑州|Zhengzhou|河南省|Henan|华中|Central China|0371|450000",
          "金水区 郑东新区 二七区", 3),
    _city("合肥|Hefei|安徽省|Anhui|华东|East China|0551|230000",
          "蜀山区 包河区 高新区", 2),
    _city("济南|Jinan|山东省|Shandong|华东|East China|0531|250000",
          "历下区 槐荫区 高新区", 2),
    _city("沈阳|Shenyang|辽宁省|Liaoning|东北|Northeast China|024|110000",
          "和平区 沈河区 浑南区", 2),
    _city("大连|Dalian|辽宁省|Liaoning|东北|Northeast China|0411|116000",
          "中山区 沙河口区 甘井子区", 2),
    _city("宁波|Ningbo|浙江省|Zhejiang|华东|East China|0574|315000",
          "鄞州区 海曙区 江北区", 2),
    _city("东莞|Dongguan|广东省|Guangdong|华南|South China|0769|523000",
          "南城区 东城区 松山湖", 2),
    _city("福州|Fuzhou|福建省|Fujian|华东|East China|0591|350000",
          "鼓楼区 仓山区 晋安区", 1),
    _city("昆明|Kunming|云南省|Yunnan|西南|Southwest China|0871|650000",
          "五华区 盘龙区 官渡区", 1),
)

# (Chinese road, its English spelling). English spellings use the usual abbreviations, which
# the address variants expand.
_ROADS: tuple[tuple[str, str], ...] = (
    ("建国路", "Jianguo Rd"), ("人民路", "Renmin Rd"), ("中山路", "Zhongshan Rd"),
    ("解放路", "Jiefang Rd"), ("长安街", "Chang'an St"), ("世纪大道", "Century Ave"),
    ("南京西路", "West Nanjing Rd"), ("科技园路", "Science Park Rd"), ("创业路", "Chuangye Rd"),
    ("学院路", "Xueyuan Rd"), ("文三路", "Wensan Rd"), ("天府大道", "Tianfu Ave"),
    ("高新大道", "Gaoxin Ave"), ("滨江大道", "Binjiang Ave"), ("金融街", "Financial St"),
    ("望京街", "Wangjing St"), ("张江路", "Zhangjiang Rd"), ("软件园路", "Software Park Rd"),
    ("东风路", "Dongfeng Rd"), ("黄河路", "Huanghe Rd"), ("长江路", "Changjiang Rd"),
    ("和平路", "Heping Rd"), ("新华路", "Xinhua Rd"), ("朝阳路", "Chaoyang Rd"),
    ("光华路", "Guanghua Rd"), ("花园路", "Huayuan Rd"), ("体育西路", "West Tiyu Rd"),
    ("深南大道", "Shennan Blvd"), ("科苑路", "Keyuan Rd"), ("香山路", "Xiangshan Rd"),
    ("丰收路", "Fengshou Rd"), ("江南大道", "Jiangnan Ave"), ("延安路", "Yan'an Rd"),
    ("中关村大街", "Zhongguancun St"), ("漕溪路", "Caoxi Rd"), ("汉街", "Han St"),
)
_BUILDINGS = ("国贸大厦", "科技大厦", "创新中心", "金融中心", "软件园", "数码港", "世纪广场",
              "中心大厦", "时代广场", "企业天地", "环球中心", "国际大厦", "产业园", "商务中心")
_EN_ABBREVIATIONS = (("Rd", "Road"), ("St", "Street"), ("Ave", "Avenue"), ("Blvd", "Boulevard"))


@dataclass(frozen=True, slots=True)
class Industry:
    """An industry with its Chinese and English labels and the words companies use for it."""

    zh: str
    en: str
    zh_words: tuple[str, ...]
    en_words: tuple[str, ...]
    weight: float


_INDUSTRIES: tuple[Industry, ...] = (
    Industry("软件/信息技术", "Software & IT",
             ("数据科技", "信息技术", "软件", "智能科技", "网络科技"),
             ("Software", "Analytics", "Systems", "Technologies", "Data"), 16),
    Industry("互联网", "Internet", ("网络技术", "互联网科技", "信息服务"),
             ("Networks", "Digital", "Online", "Interactive"), 10),
    Industry("零售/电商", "Retail & E-commerce", ("电子商务", "商贸", "零售连锁"),
             ("Retail", "Commerce", "Stores"), 8),
    Industry("制造业", "Manufacturing", ("机械制造", "智能制造", "精密机械", "电子"),
             ("Manufacturing", "Industries", "Engineering", "Components"), 12),
    Industry("金融", "Financial Services", ("金融信息服务", "投资管理", "融资租赁"),
             ("Capital", "Finance", "Investments"), 6),
    Industry("教育", "Education", ("教育科技", "教育咨询", "培训"),
             ("Education", "Learning", "Academy"), 6),
    Industry("医疗健康", "Healthcare", ("生物医药", "医疗器械", "健康管理"),
             ("Health", "Medical", "Biotech", "Pharma"), 7),
    Industry("专业服务", "Professional Services", ("管理咨询", "企业服务", "人力资源"),
             ("Consulting", "Partners", "Advisory"), 8),
    Industry("物流", "Logistics", ("供应链管理", "物流", "国际货运代理"),
             ("Logistics", "Freight", "Supply Chain"), 5),
    Industry("媒体/广告", "Media & Advertising", ("文化传媒", "广告", "影视文化"),
             ("Media", "Studios", "Creative"), 5),
    Industry("能源", "Energy", ("新能源", "能源科技", "电力工程"), ("Energy", "Power", "Solar"), 4),
    Industry("汽车", "Automotive", ("汽车服务", "汽车零部件"), ("Automotive", "Motors"), 4),
    Industry("房地产", "Real Estate", ("房地产开发", "物业管理", "置业"),
             ("Properties", "Realty", "Estates"), 4),
    Industry("消费品", "Consumer Goods", ("食品", "日化", "服饰"),
             ("Foods", "Brands", "Apparel"), 5),
)

# Two characters of a Chinese brand (字号); none is a place name, so no brand reads as a region.
_BRAND_CHARS = (
    "星辰云帆天元华信中科博远智联创汇通恒达腾飞鼎盛宏图君合瑞丰金桥银河蓝新宇卓越领航启明致聚"
    "力同源众成德润安盈嘉禾万象品优易迅捷选行思图数慧眼道长青美康泰和诚正弘毅鸿锐翔凯佳润泽"
)
# Legal forms (Chinese) with their share; the variants swap one for another.
_CN_LEGAL: tuple[tuple[str, float], ...] = (
    ("有限公司", 60), ("股份有限公司", 15), ("有限责任公司", 12), ("集团有限公司", 5), ("", 8),
)
_EN_PREFIXES = _words(
    "Acme Apex Blue Bright Cedar Crest Delta Eagle Evergreen Falcon Golden Granite Harbor "
    "Horizon Iron Jade Keystone Lotus Maple Meridian Nova Oak Orion Pacific Peak Pioneer "
    "Prime Quantum Red River Sage Silver Summit Sun Terra Titan Unity Vertex Vista West Zenith "
    "Atlas Beacon Cobalt Coral Echo Ember Frontier Glacier Helix Indigo Juniper Kite Lumen "
    "Monarch Northstar Onyx Polaris Redwood Sterling Tidal Union Vanguard Willow"
)
_EN_MIDDLES = ("", "", "", "Bay", "Bridge", "Cloud", "Field", "Gate", "Light", "Line", "Point",
               "Rock", "Stone", "Wave", "Wood", "Star", "Hill", "Lake")
_EN_LEGAL: tuple[tuple[str, float], ...] = (
    ("Ltd", 30), ("Limited", 10), ("Inc.", 15), ("Co., Ltd.", 15), ("LLC", 8), ("Pte. Ltd.", 6),
    ("Corp.", 6), ("GmbH", 4), ("", 6),
)
_EN_LEGAL_SWAPS = {
    "Ltd": ("Limited", "Co., Ltd.", ""), "Limited": ("Ltd", "Ltd.", ""),
    "Inc.": ("Inc", "Incorporated", ""), "Co., Ltd.": ("Co. Ltd", "Ltd", "Limited"),
    "LLC": ("L.L.C.", ""), "Pte. Ltd.": ("Pte Ltd", "Private Limited"),
    "Corp.": ("Corporation", ""),
    "GmbH": ("", "Ltd"), "": ("Ltd", "Co., Ltd."),
}
_CN_LEGAL_SWAPS = {
    "有限公司": ("", "股份有限公司", "有限责任公司"), "股份有限公司": ("有限公司", ""),
    "有限责任公司": ("有限公司", ""), "集团有限公司": ("集团", "有限公司"), "": ("有限公司",),
}
_WEBMAIL_ZH: tuple[tuple[str, float], ...] = (
    ("qq.com", 40), ("163.com", 25), ("126.com", 10), ("sina.com", 5), ("foxmail.com", 6),
    ("139.com", 4), ("aliyun.com", 3), ("outlook.com", 4), ("gmail.com", 3),
)
_WEBMAIL_EN: tuple[tuple[str, float], ...] = (
    ("gmail.com", 45), ("outlook.com", 20), ("hotmail.com", 12), ("yahoo.com", 10),
    ("icloud.com", 8), ("163.com", 5),
)

_FULL_WIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)} | {0x20: 0x3000}


def _full_width(value: str) -> str:
    return value.translate(_FULL_WIDTH)


# (multiplier, offset) of each identifier's scramble. Multipliers are coprime with 10, so
# each map below is a bijection; distinct constants per identifier keep one person's phone,
# QQ number and WeChat id from visibly sharing digits.
_MOBILE_MIX = (7_391_351, 386_168)
_WECHAT_MIX = (3_467_917, 3_141_592)
_WEBMAIL_MIX = (9_136_247, 2_718_281)
_QQ_MIX = (5_204_083, 1_618_033)
_LANDLINE_MIX = (6_827_359, 5_772_156)
_INTL_MIX = (2_961_733, 1_414_213)


def _scramble(pid: int, width: int, mix: tuple[int, int]) -> int:
    """A bijection of ``[0, 10**width)``: the same person id always gives the same number and
    two ids below ``10**width`` never give the same one. Fixed constants (not the seed) keep
    separately generated batches with disjoint person ids disjoint in phones and emails too."""
    return (pid * mix[0] + mix[1]) % 10**width


def _cumulative(weights: Iterable[float]) -> list[float]:
    return list(accumulate(weights))


@lru_cache(maxsize=1)
def _pinyin_of_pools() -> tuple[dict[str, str], tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Pinyin of given-name and brand characters, and homophone groups (computed once)."""
    from pypinyin import lazy_pinyin

    chars = tuple(dict.fromkeys(_GIVEN_CHARS))
    pinyin = {c: lazy_pinyin(c)[0] for c in (*chars, *dict.fromkeys(_BRAND_CHARS))}
    groups: dict[str, list[str]] = {}
    for c in chars:
        groups.setdefault(pinyin[c], []).append(c)
    given = tuple(c for c in chars if len(groups[pinyin[c]]) > 1)
    homophones = {c: tuple(o for o in groups[pinyin[c]] if o != c) for c in given}
    return pinyin, given, homophones


# ------------------------------------------------------------------------------ companies


@dataclass(slots=True)
class Company:
    """A company of the pool: its registered name, firmographics, address and email domain.

    ``stem`` is the name without region and legal form (星辰数据科技, Apex Cloud Analytics);
    ``region_style`` says how the city is written into the name (prefix 北京…, ``(北京)…``,
    inside …(北京)…, or not at all); the name variants of duplicates are built from these.
    """

    # The fields every record reads come first: they share the object's first cache line.
    name: str
    city: City
    industry: Industry
    lang: str
    domain: str
    address: str
    stem: str
    id: int
    legal: str
    region_style: str
    headcount: int
    district: str
    address_parts: tuple[str, ...]
    postcode: str


def _cn_company_name(stem: str, legal: str, city: str, style: str) -> str:
    if style == "prefix":
        return f"{city}{stem}{legal}"
    if style == "paren":
        return f"({city}){stem}{legal}"
    if style == "inner":
        return f"{stem[:2]}({city}){stem[2:]}{legal}"
    return f"{stem}{legal}"


def _en_company_name(stem: str, legal: str) -> str:
    return f"{stem} {legal}" if legal else stem


class CompanyPool:
    """A list of generated companies, with a size-weighted pick (big companies produce more
    leads) and the company email addresses handed out so far (each one to one person; pass
    the same pool to several ``generate_leads`` calls to keep that true across them)."""

    def __init__(self, companies: list[Company]) -> None:
        if not companies:
            raise ValueError("a company pool needs at least one company")
        self.companies = companies
        self.size = len(companies)
        prob, alias = _alias_table([c.headcount**0.4 for c in companies])
        # One flat array, column i's probability and alias side by side: a random column
        # costs one cache miss, not one per boxed number.
        self.table = array("d", [v for pa in zip(prob, alias, strict=True) for v in pa])
        self._emails: set[str] = set()

    def __len__(self) -> int:
        return len(self.companies)

    def __iter__(self) -> Iterator[Company]:
        return iter(self.companies)

    def pick(self, u: float) -> Company:
        """A company drawn by size from one uniform ``u`` in [0, 1) (Walker's alias method:
        constant time, whatever the size of the pool)."""
        x = u * self.size
        i = int(x)
        return self.companies[i if x - i < self.table[2 * i] else int(self.table[2 * i + 1])]

    def claim_email(self, local: str, domain: str) -> str:
        """``local@domain`` if no other employee has it yet, else with a number added."""
        taken = self._emails
        email = f"{local}@{domain}"
        n = 2
        while email in taken:
            email = f"{local}{n}@{domain}"
            n += 1
        taken.add(email)
        return email

    @classmethod
    def generate(cls, n: int, seed: int, *, english_share: float = 0.2) -> CompanyPool:
        """``n`` companies, seeded. Company keys (name without region and legal form) and
        domains are unique within the pool, so two companies never read as one."""
        rng = random.Random(seed)
        r = rng.random
        pinyin, _, _ = _pinyin_of_pools()
        city_cum = _cumulative(c.weight for c in _CITIES)
        ind_cum = _cumulative(i.weight for i in _INDUSTRIES)
        cn_legal_cum = _cumulative(w for _, w in _CN_LEGAL)
        en_legal_cum = _cumulative(w for _, w in _EN_LEGAL)
        brand_chars = tuple(dict.fromkeys(_BRAND_CHARS))
        stems: set[str] = set()
        domains: set[str] = set()
        companies: list[Company] = []
        while len(companies) < n:
            city = _CITIES[bisect(city_cum, r() * city_cum[-1])]
            industry = _INDUSTRIES[bisect(ind_cum, r() * ind_cum[-1])]
            english = r() < english_share
            if english:
                stem = " ".join(
                    p for p in (rng.choice(_EN_PREFIXES) + rng.choice(_EN_MIDDLES),
                                rng.choice(industry.en_words)) if p
                )
                legal = _EN_LEGAL[bisect(en_legal_cum, r() * en_legal_cum[-1])][0]
                style = "none"
            else:
                a, b = rng.sample(brand_chars, 2)
                stem = a + b + rng.choice(industry.zh_words)
                legal = _CN_LEGAL[bisect(cn_legal_cum, r() * cn_legal_cum[-1])][0]
                x = r()
                style = "prefix" if x < 0.4 else "paren" if x < 0.5 else "inner" if x < 0.55 else (
                    "none")
            if stem.lower() in stems:
                continue
            stems.add(stem.lower())
            if english:
                base = stem.lower().replace(" ", "")
                name = _en_company_name(stem, legal)
            else:
                brand = pinyin[stem[0]] + pinyin[stem[1]]
                base = rng.choice((brand, brand + "tech", brand + "-" + city.en.lower()[:2],
                                   brand + "group"))
                name = _cn_company_name(stem, legal, city.zh, style)
            domain = base.replace("'", "") + rng.choice((".com", ".com", ".cn", ".com.cn", ".net"))
            k = 2
            while domain in domains:
                domain = f"{base}{k}.com"
                k += 1
            domains.add(domain)
            headcount = _headcount(r)
            district = rng.choice(city.districts)
            road_zh, road_en = rng.choice(_ROADS)
            number = str(rng.randint(1, 999))
            if english:
                unit = f"Room {rng.randint(2, 40)}{rng.randint(1, 20):02d}, " if r() < 0.6 else ""
                parts: tuple[str, ...] = (unit, number, road_en, city.en)
                address = f"{unit}{number} {road_en}, {city.en}"
            else:
                building = (f"{rng.choice(_BUILDINGS)}{rng.randint(2, 40)}层" if r() < 0.5 else "")
                parts = (city.zh + "市", district, road_zh, number, building)
                address = f"{city.zh}市{district}{road_zh}{number}号{building}"
            postcode = city.postcode[:4] + f"{rng.randint(0, 99):02d}"
            companies.append(Company(
                id=len(companies), name=name, lang="en" if english else "zh", stem=stem,
                legal=legal, region_style=style, industry=industry, headcount=headcount,
                city=city, district=district, address=address, address_parts=parts,
                domain=domain, postcode=postcode,
            ))
        return cls(companies)


def _alias_table(weights: list[float]) -> tuple[list[float], list[int]]:
    """Vose's alias table of ``weights``: column ``i`` keeps itself with ``prob[i]``, else
    hands over to ``alias[i]``."""
    n = len(weights)
    total = sum(weights)
    scaled = [w * n / total for w in weights]
    prob, alias = [1.0] * n, list(range(n))
    small = [i for i, s in enumerate(scaled) if s < 1.0]
    large = [i for i, s in enumerate(scaled) if s >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return prob, alias


def _headcount(rand: Rand) -> int:
    x = rand()
    if x < 0.55:
        lo, hi = 5, 100
    elif x < 0.85:
        lo, hi = 100, 1000
    elif x < 0.97:
        lo, hi = 1000, 10_000
    else:
        lo, hi = 10_000, 100_000
    # Log-uniform inside the band: many small companies, few big ones.
    return int(lo * (hi / lo) ** rand())


def _headcount_text(h: int, zh: bool, u: float) -> str:
    if u < 0.45:
        return str(h)
    if u < 0.6:
        return f"{h:,}"
    bands = ((20, "1-19"), (100, "20-99"), (500, "100-499"), (1000, "500-999"),
             (10_000, "1000-9999"))
    for top, band in bands:
        if h < top:
            return band + ("人" if zh and u < 0.8 else "")
    return "10000人以上" if zh else "10000+"


# ------------------------------------------------------------------------------- records


@dataclass(slots=True)
class GeneratedLead:
    """One generated record with its ground truth.

    ``record`` has canonical lead keys (``external_id`` included, unique per record);
    ``person_id`` is the real person behind it; ``kind`` is ``"original"`` for a person's
    first record or the variant kind of a duplicate (see :data:`DUPLICATE_KINDS`);
    ``received_at_offset_s`` is how long before "now" the record arrived (records are in
    time order: offsets decrease along the stream). Invalid rows from :func:`bad_rows` carry
    the field they are expected to be rejected on in ``reject_field``.
    """

    person_id: int
    record: dict[str, str]
    kind: str
    received_at_offset_s: int = 0
    reject_field: str | None = None

    @property
    def external_id(self) -> str:
        """The source's id of this record."""
        return self.record["external_id"]


# Presence bits of the fields of an original record.
_NAME, _SPLIT, _PHONE, _EMAIL, _WECHAT, _TITLE, _COMPANY, _INDUSTRY = (1 << i for i in range(8))
_HEADCOUNT, _REGION, _PROVINCE, _CITY, _ADDRESS, _POSTCODE, _PRODUCT, _NOTES = (
    1 << i for i in range(8, 16))
_TAGS, _CONSENT = 1 << 16, 1 << 17
_COMPANY_FACTS = _INDUSTRY | _HEADCOUNT | _REGION | _PROVINCE | _CITY | _ADDRESS | _POSTCODE
_EXTRAS = _PRODUCT | _NOTES | _TAGS | _CONSENT
_N_FIRST = len(_ENGLISH_FIRST)
_N_LAST = len(_ENGLISH_LAST)
_N_MOBILE = len(_MOBILE_PREFIXES)
# Probability of each field in an original record, Chinese / English person.
_PRESENCE: dict[int, tuple[float, float]] = {
    _NAME: (0.96, 0.97), _PHONE: (0.85, 0.65), _EMAIL: (0.55, 0.80), _WECHAT: (0.30, 0.05),
    _TITLE: (0.55, 0.60), _COMPANY: (0.78, 0.82), _INDUSTRY: (0.22, 0.25),
    _HEADCOUNT: (0.15, 0.15), _REGION: (0.06, 0.05), _PROVINCE: (0.22, 0.10), _CITY: (0.45, 0.50),
    _ADDRESS: (0.33, 0.30), _POSTCODE: (0.04, 0.06), _PRODUCT: (0.40, 0.40), _NOTES: (0.10, 0.10),
    _TAGS: (0.08, 0.06), _CONSENT: (0.25, 0.30),
}
_PATTERNS = 4096


def _presence_patterns(rng: random.Random, lang: int) -> tuple[int, ...]:
    """Pre-drawn presence masks: one draw per record picks a whole pattern."""
    r = rng.random
    out = []
    for _ in range(_PATTERNS):
        mask = 0
        for bit, probs in _PRESENCE.items():
            if r() < probs[lang]:
                mask |= bit
        if mask & _ADDRESS and r() < 0.9:
            mask |= _CITY  # an address usually comes with its city
        if lang == 1 and mask & _NAME and r() < 0.25:
            mask |= _SPLIT  # English forms often ask first and last name apart
        if not mask & (_NAME | _PHONE | _EMAIL | _WECHAT):
            mask |= _PHONE  # someone to contact
        out.append(mask)
    return tuple(out)


class _Person(NamedTuple):
    """What a duplicate is derived from: the person and their first record."""

    pid: int
    english: bool
    family: str
    given: str
    company_id: int
    record: dict[str, str]
    phone_parts: tuple[str, ...] | None


#: ``_Person`` fields as a plain tuple, as ``_Generator.original`` returns them.
_PersonRow = tuple[int, bool, str, str, int, dict[str, str], tuple[str, ...] | None]

_new_tuple = tuple.__new__
# Separators of packed people: control characters never occur in generated values.
_FS, _PS = "\x1f", "\x1e"


def _pack(row: _PersonRow) -> str:
    """A person as one string for the reservoir.

    Keeping every field of 20,000+ people as live objects costs the hot loop a third of its
    speed (new records can no longer reuse warm memory); one string per person does not.
    It is also a copy, so a caller changing the record it was given changes nothing here.
    Layout: ``E|Z, pid, company id, family, given, phone parts`` then key, value, ….
    """
    pid, english, family, given, company_id, record, phone_parts = row
    head = ("E" if english else "Z", str(pid), str(company_id), family, given,
            _PS.join(phone_parts) if phone_parts else "")
    return _FS.join((*head, *[x for item in record.items() for x in item]))


def _unpack(packed: str) -> _Person:
    """The person :func:`_pack` stored."""
    parts = packed.split(_FS)
    phone = parts[5]
    record = dict(zip(parts[6::2], parts[7::2], strict=True))
    # tuple.__new__ skips the NamedTuple constructor's Python frame.
    return _new_tuple(_Person, (int(parts[1]), parts[0] == "E", parts[3], parts[4],
                                int(parts[2]), record,
                                tuple(phone.split(_PS)) if phone else None))


def _has(packed: str, key: str) -> bool:
    """Whether a packed person's record has ``key`` (keys never occur as values)."""
    return f"{_FS}{key}{_FS}" in packed


class _Generator:
    """State of one ``generate_leads`` run; the hot path is :meth:`original`."""

    # Enough earlier people to pick duplicates from, few enough to stay small in memory:
    # the reservoir is a uniform sample of everyone seen so far.
    RESERVOIR = 20_000

    def __init__(self, *, seed: int, start_person_id: int, pool: CompanyPool,
                 lang_mix: float) -> None:
        self.rng = random.Random(seed)
        self.prefix = f"{seed}-{start_person_id}-"
        self.pool = pool
        self.lang_mix = lang_mix
        pinyin, given, homophones = _pinyin_of_pools()
        self.given_chars = given
        self.given_pinyin = tuple(pinyin[c] for c in given)
        self.n_given = len(given)
        self.homophones = homophones
        total = sum(w for _, _, w in _SURNAMES)
        # An expanded table: index by int(u * len) instead of a weighted search.
        table: list[tuple[str, str]] = []
        for sur, py, w in _SURNAMES:
            table.extend([(sur, py)] * max(1, round(w * 4000 / total)))
        self.surnames = tuple(table)
        self.n_surnames = len(table)
        self.patterns = (_presence_patterns(self.rng, 0), _presence_patterns(self.rng, 1))
        self.titles = (self._expand(_TITLES_ZH), self._expand(_TITLES_EN))
        self.webmail = (self._expand(_WEBMAIL_ZH), self._expand(_WEBMAIL_EN))
        self.reservoir: list[str] = []  # packed people, see _pack

    @staticmethod
    def _expand(weighted: tuple[tuple[str, float], ...]) -> tuple[str, ...]:
        return tuple(v for v, w in weighted for _ in range(max(1, round(w))))

    # -- originals ----------------------------------------------------------------------

    def original(self, pid: int, external_id: str) -> _PersonRow:
        """A new person and their first record.

        The hot path of the generator: attributes bound to locals, one uniform draw per
        choice, the usual mainland mobile and the pinyin of a name built inline.
        """
        r = self.rng.random
        pool = self.pool
        english = r() >= self.lang_mix
        # CompanyPool.pick, inlined; the index doubles as the company id.
        table = pool.table
        x = r() * pool.size
        i = int(x)
        company_id = i if x - i < table[2 * i] else int(table[2 * i + 1])
        company = pool.companies[company_id]
        if english:
            if company.lang == "zh" and r() < 0.6:
                # English speakers lean to foreign companies.
                x = r() * pool.size
                i = int(x)
                company_id = i if x - i < table[2 * i] else int(table[2 * i + 1])
                company = pool.companies[company_id]
            given = _ENGLISH_FIRST[int(r() * _N_FIRST)]
            family = _ENGLISH_LAST[int(r() * _N_LAST)]
            name = f"{given} {family}"
            mask = self.patterns[1][int(r() * _PATTERNS)]
            fpy = gpy = ""
        else:
            family, fpy = self.surnames[int(r() * self.n_surnames)]
            chars, pys, n_chars = self.given_chars, self.given_pinyin, self.n_given
            i = int(r() * n_chars)
            given, gpy = chars[i], pys[i]
            if r() < 0.85:
                i = int(r() * n_chars)
                given += chars[i]
                gpy += pys[i]
            name = family + given
            mask = self.patterns[0][int(r() * _PATTERNS)]
        rec: dict[str, str] = {"external_id": external_id}
        phone_parts = None
        if mask & _NAME:
            if mask & _SPLIT:
                rec["given_name"] = given
                rec["family_name"] = family
            else:
                rec["name"] = name
        if mask & _PHONE:
            if english and r() < 0.5:
                phone_parts = self._foreign_or_landline(pid, company)
                rec["phone"] = _format_phone(phone_parts, int(r() * 4))
            else:
                # A mainland mobile, unique per person (see _scramble).
                digits = (pid * 7_391_351 + 386_168) % 100_000_000  # _scramble, _MOBILE_MIX
                mobile = f"{_MOBILE_PREFIXES[pid % _N_MOBILE]}{digits:08d}"
                phone_parts = ("mobile", mobile)
                rec["phone"] = mobile if r() < 0.7 else _format_phone(phone_parts, 1 + int(r() * 3))
        if mask & (_EMAIL | _WECHAT):
            if english:
                fpy, gpy = family.lower(), given.lower()
            if mask & _EMAIL:
                rec["email"] = self._email(pid, english, gpy, fpy, company)
            if mask & _WECHAT:
                sep = "_" if r() < 0.3 else ""
                digits = (pid * 3_467_917 + 3_141_592) % 10_000_000  # _scramble, _WECHAT_MIX
                rec["wechat_id"] = f"{(fpy + gpy)[:12]}{sep}{digits:07d}"
        if mask & _TITLE:
            titles = self.titles[english]
            rec["title"] = titles[int(r() * len(titles))]
        if mask & _COMPANY:
            # Now and then the short name people say (星辰数据科技, Apex Cloud Analytics).
            rec["company"] = company.name if r() < 0.9 else company.stem
        if mask & _COMPANY_FACTS:
            place = company.city.spellings
            if mask & _INDUSTRY:
                rec["industry"] = company.industry.en if english else company.industry.zh
            if mask & _HEADCOUNT:
                rec["headcount"] = _headcount_text(company.headcount, not english, r())
            if mask & _REGION:
                rec["region"] = place[0] if english else place[1]
            if mask & _PROVINCE:
                rec["province"] = place[2] if english else place[3 if r() < 0.7 else 4]
            if mask & _CITY:
                rec["city"] = place[5] if english else place[6 if r() < 0.5 else 7]
            if mask & _ADDRESS:
                rec["address"] = company.address
            if mask & _POSTCODE:
                rec["postcode"] = company.postcode
        if mask & _EXTRAS:
            if mask & _PRODUCT:
                rec["product_interest"] = _PRODUCTS[int(r() * len(_PRODUCTS))]
            if mask & _NOTES:
                notes = _NOTES_EN if english else _NOTES_ZH
                rec["notes"] = notes[int(r() * len(notes))]
            if mask & _TAGS:
                tags = _TAGS_EN if english else _TAGS_ZH
                rec["tags"] = tags[int(r() * len(tags))]
            if mask & _CONSENT:
                rec["consent"] = ("yes" if r() < 0.8 else "no") if english else (
                    "是" if r() < 0.7 else "同意" if r() < 0.8 else "否")
        # A plain tuple: most people never enter the reservoir (see _pack).
        return (pid, english, family, given, company_id, rec, phone_parts)

    def _foreign_or_landline(self, pid: int, company: Company) -> tuple[str, ...]:
        """An English lead's international number or office landline, unique per person
        (for person ids below seven million)."""
        if pid % 2:
            cc, area, lead, width, groups = _FOREIGN[pid // 2 % len(_FOREIGN)]
            local = f"{lead}{_scramble(pid, width, _INTL_MIX):0{width}d}"
            return ("intl", cc, area, local, *map(str, groups))
        local = f"6{_scramble(pid, 7, _LANDLINE_MIX):07d}"
        return ("landline", company.city.area_code, local)

    def _email(self, pid: int, english: bool, gpy: str, fpy: str, company: Company) -> str:
        r = self.rng.random
        u = r()
        if english:
            if u < 0.35:
                local = gpy + "." + fpy
            elif u < 0.55:
                local = gpy[0] + fpy
            elif u < 0.7:
                local = gpy + "_" + fpy
            elif u < 0.85:
                local = fpy + "." + gpy
            else:
                local = gpy
        elif u < 0.35:
            local = fpy + gpy
        elif u < 0.55:
            local = gpy + "." + fpy
        elif u < 0.7:
            local = fpy + "." + gpy
        elif u < 0.85:
            local = gpy[0] + fpy
        else:
            local = fpy + gpy[0]
        if r() < (0.6 if english else 0.45):
            return self.pool.claim_email(local, company.domain)
        webmail = self.webmail[english]
        domain = webmail[int(r() * len(webmail))]
        # Unique by construction: the number is a bijection of the person id.
        if domain == "qq.com" and r() < 0.5:
            return f"{10**8 + _scramble(pid, 8, _QQ_MIX)}@qq.com"  # a QQ number
        # The fixed width keeps "name + number" unambiguous, so distinct ids never collide.
        if pid < 1_000_000:
            digits = (pid * 9_136_247 + 2_718_281) % 1_000_000  # _scramble, _WEBMAIL_MIX
            return f"{local}{digits:06d}@{domain}"
        return f"{local}{_scramble(pid, 8, _WEBMAIL_MIX):08d}@{domain}"

    # -- duplicates ---------------------------------------------------------------------

    def duplicate(self, kind: str, external_id: str) -> tuple[_Person, dict[str, str]] | None:
        """A record of an earlier person in variant ``kind``, or ``None`` if none fits."""
        reservoir = self.reservoir
        if not reservoir:
            return None
        r = self.rng.random
        eligible = _ELIGIBLE[kind]
        for _ in range(40):
            packed = reservoir[int(r() * len(reservoir))]
            if eligible(packed):
                person = _unpack(packed)
                return person, _BUILDERS[kind](self, person, external_id)
        return None

    def company(self, person: _Person) -> Company:
        """The company a person works at."""
        return self.pool.companies[person.company_id]

    def _name(self, person: _Person) -> str:
        rec = person.record
        return rec.get("name") or (
            f"{person.given} {person.family}" if person.english else person.family + person.given)

    def _phone_dup(self, person: _Person, external_id: str) -> dict[str, str]:
        r = self.rng.random
        rec = person.record
        assert person.phone_parts is not None
        formats = _PHONE_FORMATS[person.phone_parts[0]]
        phone = rec["phone"]
        while phone == rec["phone"]:
            phone = _format_phone(person.phone_parts, int(r() * len(formats)))
        out = {"external_id": external_id, "phone": phone}
        u = r()
        if u < 0.1:
            # A call-centre note: 张先生 / Mr. Smith instead of the full name.
            out["name"] = (f"Mr. {person.family}" if person.english else
                           person.family + ("先生" if r() < 0.6 else "女士"))
        elif u < 0.8:
            out["name"] = self._name(person)
        self._copy_some(person, out, ("company", "title", "city", "product_interest"), 0.4)
        return out

    def _email_dup(self, person: _Person, external_id: str) -> dict[str, str]:
        r = self.rng.random
        email = person.record["email"]
        variant = email
        while variant == email:
            u = r()
            local, domain = email.split("@")
            if u < 0.3:
                variant = email.upper()
            elif u < 0.55:
                variant = f"{local.title()}@{domain}"
            elif u < 0.75:
                variant = f"{local}@{domain.upper()}"
            else:
                variant = f"{' ' if r() < 0.5 else ''}{email}{' ' if r() < 0.7 else ''}"
                if r() < 0.5:
                    variant = variant.replace("@", " @")
        out = {"external_id": external_id, "email": variant}
        if r() < 0.75:
            out["name"] = self._name(person)
        self._copy_some(person, out, ("company", "title", "industry", "product_interest"), 0.35)
        return out

    def _typo_dup(self, person: _Person, external_id: str) -> dict[str, str]:
        r = self.rng.random
        if person.english:
            if r() < 0.5:
                name = f"{_one_letter_typo(person.given, r)} {person.family}"
            else:
                name = f"{person.given} {_one_letter_typo(person.family, r)}"
        else:
            positions = [i for i, c in enumerate(person.given) if c in self.homophones]
            i = positions[int(r() * len(positions))]
            options = self.homophones[person.given[i]]
            given = person.given[:i] + options[int(r() * len(options))] + person.given[i + 1:]
            name = person.family + given
        out = {"external_id": external_id, "name": name,
               "company": _company_variant(self.company(person), r, person.record["company"])}
        self._copy_some(person, out, ("title", "city", "industry"), 0.3)
        return out

    def _order_dup(self, person: _Person, external_id: str) -> dict[str, str]:
        r = self.rng.random
        u = r()
        family = person.family.upper() if u < 0.15 else person.family
        name = f"{family}, {person.given}" if u < 0.6 else f"{family} {person.given}"
        company = person.record["company"] if r() < 0.5 else _company_variant(
            self.company(person), r, person.record["company"])
        out = {"external_id": external_id, "name": name, "company": company}
        self._copy_some(person, out, ("title", "city"), 0.3)
        return out

    def _address_dup(self, person: _Person, external_id: str) -> dict[str, str]:
        r = self.rng.random
        rec = person.record
        city = rec["city"]
        if not person.english and r() < 0.5:
            city = city[:-1] if city.endswith("市") else city + "市"
        address = _address_variant(self.company(person), r)
        out = {"external_id": external_id, "name": self._name(person), "city": city,
               "address": address}
        self._copy_some(person, out, ("title", "province", "product_interest"), 0.3)
        return out

    def _full_width_dup(self, person: _Person, external_id: str) -> dict[str, str]:
        r = self.rng.random
        rec = person.record
        out = {"external_id": external_id}
        both = "phone" in rec and "email" in rec
        use_phone = "phone" in rec and (not both or r() < 0.6)
        use_email = "email" in rec and (not both or not use_phone or r() < 0.3)
        if use_phone:
            out["phone"] = _full_width(rec["phone"])
        if use_email:
            out["email"] = _full_width(rec["email"])
        if "company" in rec:
            company = rec["company"]
            # Chinese names: only the brackets and Latin letters widen; English ones entirely.
            out["company"] = _full_width(company) if r() < 0.8 else company
        if r() < 0.8:
            out["name"] = _full_width(self._name(person)) if person.english else self._name(person)
        return out

    def _copy_some(self, person: _Person, out: dict[str, str], keys: tuple[str, ...],
                   p: float) -> None:
        r = self.rng.random
        rec = person.record
        for key in keys:
            if key in rec and r() < p:
                out[key] = rec[key]


def _named(packed: str) -> bool:
    return _has(packed, "name") or _has(packed, "given_name")


# Which earlier people can be duplicated in each kind: the evidence must be in their first
# record (checked on the packed form, without unpacking).
_ELIGIBLE: dict[str, Callable[[str], bool]] = {
    PHONE_FORMAT: lambda p: _has(p, "phone"),
    EMAIL_CASE: lambda p: _has(p, "email"),
    NAME_TYPO: lambda p: _named(p) and _has(p, "company"),
    NAME_ORDER: lambda p: p[0] == "E" and _named(p) and _has(p, "company"),
    ADDRESS_VARIANT: lambda p: _named(p) and _has(p, "city") and _has(p, "address"),
    FULL_WIDTH: lambda p: _has(p, "phone") or _has(p, "email"),
}
_BUILDERS = {
    PHONE_FORMAT: _Generator._phone_dup,
    EMAIL_CASE: _Generator._email_dup,
    NAME_TYPO: _Generator._typo_dup,
    NAME_ORDER: _Generator._order_dup,
    ADDRESS_VARIANT: _Generator._address_dup,
    FULL_WIDTH: _Generator._full_width_dup,
}


def _group(digits: str, sizes: Iterable[int], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(digits[i:i + size])
        i += size
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(p for p in out if p)


# How each kind of number is written, most common first (index 0 is the usual form).
# Mobile templates get (3 digits, 4 digits, 4 digits); landline ones (area code, area code
# without its 0, first and second half of the local number).
_PHONE_FORMATS: dict[str, tuple[str, ...]] = {
    "mobile": ("{0}{1}{2}", "{0}-{1}-{2}", "{0} {1} {2}", "+86 {0} {1} {2}", "86{0}{1}{2}",
               "+86{0}{1}{2}", "(+86){0} {1} {2}", "0086 {0} {1} {2}"),
    "landline": ("{0}-{2}{3}", "({0}) {2} {3}", "+86 {1} {2} {3}", "{0} {2} {3}", "{0}{2}{3}"),
    "intl": ("+space", "+plain", "00 space", "+paren"),
}
_MOBILE_FORMATS = _PHONE_FORMATS["mobile"]
_LANDLINE_FORMATS = _PHONE_FORMATS["landline"]


def _format_phone(parts: tuple[str, ...], style: int) -> str:
    """Write a number (see ``_Generator._foreign_or_landline``) in format ``style``."""
    kind = parts[0]
    if kind == "mobile":
        n = parts[1]
        return _MOBILE_FORMATS[style % 8].format(n[:3], n[3:7], n[7:])
    if kind == "landline":
        area, local = parts[1], parts[2]
        template = _LANDLINE_FORMATS[style % len(_LANDLINE_FORMATS)]
        return template.format(area, area[1:], local[:4], local[4:])
    fmt = _PHONE_FORMATS[kind][style % len(_PHONE_FORMATS[kind])]
    cc, area, local = parts[1], parts[2], parts[3]
    groups = tuple(int(g) for g in parts[4:])
    national = area + local
    spaced = _group(national, groups, " ")
    if fmt == "+space":
        return f"+{cc} {spaced}"
    if fmt == "+plain":
        return f"+{cc}{national}"
    if fmt == "00 space":
        return f"00{cc} {spaced}"
    return f"+{cc} ({area}) {_group(local, groups[1:], '-')}" if area else f"+{cc} {spaced}"


def _one_letter_typo(word: str, rand: Rand) -> str:
    """A one-letter typo after the first letter: substitution, deletion, doubling or swap."""
    if len(word) < 3:
        return word + word[-1]
    i = 1 + int(rand() * (len(word) - 1))
    u = rand()
    if u < 0.35:
        letters = "aeiourstnl"
        c = letters[int(rand() * len(letters))]
        if c == word[i].lower():
            c = "e" if c != "e" else "a"
        return word[:i] + c + word[i + 1:]
    if u < 0.6:
        return word[:i] + word[i + 1:]
    if u < 0.8:
        return word[:i] + word[i] + word[i:]
    if i == len(word) - 1:
        i -= 1
    swapped = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return swapped if swapped != word else word[:i] + word[i + 1:]


def _company_variant(company: Company, rand: Rand, avoid: str) -> str:
    """The company written differently: legal form dropped or changed, region added or
    removed, full-width brackets; for English names "Ltd" → "Limited", "Co., Ltd." and so on."""
    for _ in range(8):
        if company.lang == "en":
            swaps = _EN_LEGAL_SWAPS[company.legal]
            legal = swaps[int(rand() * len(swaps))]
            stem = company.stem.upper() if rand() < 0.1 else company.stem
            name = _en_company_name(stem, legal)
            if rand() < 0.2:
                name = f"{name} ({company.city.en})"
        else:
            u = rand()
            legal = company.legal
            style = company.region_style
            if u < 0.4:
                swaps = _CN_LEGAL_SWAPS[legal]
                legal = swaps[int(rand() * len(swaps))]
            if u >= 0.25:
                styles = ("prefix", "paren", "none")
                style = styles[int(rand() * 3)]
            name = _cn_company_name(company.stem, legal, company.city.zh, style)
            if rand() < 0.3:
                name = name.replace("(", "（").replace(")", "）")
        if name not in (company.name, avoid):
            return name
    return company.stem if company.stem != avoid else company.stem + " "


def _address_variant(company: Company, rand: Rand) -> str:
    """The address written differently: spaces, 号 ↔ No., city prefix dropped or province
    added; English: abbreviations spelled out, "No." added, commas dropped."""
    parts = company.address_parts
    for _ in range(8):
        u = rand()
        if company.lang == "en":
            unit, number, road, city = parts
            if u < 0.4:
                for short, long in _EN_ABBREVIATIONS:
                    if road.endswith(" " + short):
                        road = road[: -len(short)] + long
                out = f"{unit}{number} {road}, {city}"
            elif u < 0.7:
                out = f"{unit}No. {number} {road}, {city}"
            else:
                out = f"{unit}{number} {road} {city}".replace(",", "")
        else:
            prefix, district, road, number, building = parts
            if u < 0.3:
                out = " ".join(p for p in (prefix, district, road, number + "号", building) if p)
            elif u < 0.5:
                out = f"{district}{road}{number}号{building}"
            elif u < 0.65:
                out = f"{prefix}{district}{road}{number} 号{building}"
            elif u < 0.85:
                out = f"{prefix}{district}{road}No.{number}{' ' + building if building else ''}"
            else:
                province = company.city.province_zh
                lead = "" if company.city.is_municipality else province
                out = f"{lead}{prefix}{district}{road}{number}号{building}"
        if out != company.address:
            return out
    return company.address + " "


def generate_leads(
    n: int,
    *,
    seed: int,
    dup_rate: float = 0.1,
    start_person_id: int = 0,
    companies: CompanyPool | None = None,
    lang_mix: float = 0.75,
    history_days: int = 180,
) -> Iterator[GeneratedLead]:
    """Yield ``n`` leads, a share ``dup_rate`` of them duplicates of earlier people.

    1. Each record is, with probability ``dup_rate``, a duplicate: a variant kind is drawn
       by its share (:data:`DUPLICATE_KINDS`) and an earlier person who has the evidence
       that kind needs (a phone for ``phone_format``, …) is picked from a reservoir. If none
       fits (the very first records), the record is an original instead.
    2. Otherwise a new person (id ``start_person_id``, then +1 each) with a Chinese name
       with probability ``lang_mix``, else an English one, at a company of ``companies``
       (by default a pool of ``clamp(n // 4, 200, 50_000)`` companies from the same seed).
    3. Records arrive in time order over the last ``history_days``:
       ``received_at_offset_s`` decreases along the stream.

    Deterministic for given arguments; streams without holding the records. People of
    separate calls are distinct (phones and webmail addresses derive from the person id) as
    long as their person-id ranges do not overlap; pass the same ``companies`` to keep
    company email addresses unique across calls too.
    """
    if not 0 <= dup_rate < 1:
        raise ValueError("dup_rate must be in [0, 1)")
    pool = companies if companies is not None else CompanyPool.generate(
        max(200, min(50_000, n // 4)), seed)
    gen = _Generator(seed=seed, start_person_id=start_person_id, pool=pool, lang_mix=lang_mix)
    r = gen.rng.random
    original = gen.original
    kinds = tuple(DUPLICATE_KINDS)
    kind_cum = _cumulative(DUPLICATE_KINDS.values())
    horizon = history_days * DAY_S
    step = horizon / max(n, 1)
    prefix = gen.prefix
    next_pid = start_person_id
    # Reservoir sampling with skips (Li's algorithm L), so any earlier person is equally
    # likely to be duplicated whatever the length of the run, at one draw per replacement.
    reservoir = gen.reservoir
    size = gen.RESERVOIR
    weight = math.exp(math.log(r() or 1e-12) / size)
    replace_at = size + int(math.log(r() or 1e-12) / math.log(1.0 - weight))
    for index in range(n):
        external_id = prefix + str(index)
        offset = int(horizon - (index + r()) * step)
        if r() < dup_rate:
            kind = kinds[bisect(kind_cum, r() * kind_cum[-1])]
            found = gen.duplicate(kind, external_id)
            if found is None:
                # Fall back to any kind an earlier person supports, in share order.
                for other in kinds:
                    found = gen.duplicate(other, external_id) if other != kind else None
                    if found is not None:
                        kind = other
                        break
            if found is not None:
                person, record = found
                yield GeneratedLead(person.pid, record, kind, offset)
                continue
        row = original(next_pid, external_id)
        seen = next_pid - start_person_id
        if seen < size:
            reservoir.append(_pack(row))
        elif seen == replace_at:
            reservoir[int(r() * size)] = _pack(row)
            weight *= math.exp(math.log(r() or 1e-12) / size)
            replace_at += 1 + int(math.log(r() or 1e-12) / math.log(1.0 - weight))
        yield GeneratedLead(next_pid, row[5], ORIGINAL, offset)
        next_pid += 1


def staff_person(rng: random.Random, *, english: bool) -> tuple[str, str]:
    """A staff member's display name and email local part ("王芳", "fang.wang")."""
    if english:
        given, family = rng.choice(_ENGLISH_FIRST), rng.choice(_ENGLISH_LAST)
        return f"{given} {family}", f"{given.lower()}.{family.lower()}"
    pinyin, given_chars, _ = _pinyin_of_pools()
    family, fpy = rng.choice(_SURNAMES[:40])[:2]
    given = "".join(rng.sample(given_chars, 1 if rng.random() < 0.3 else 2))
    return family + given, f"{''.join(pinyin[c] for c in given)}.{fpy}"


def bad_rows(seed: int) -> list[GeneratedLead]:
    """A few records that import must reject, each with the field it is rejected on."""
    rng = random.Random(seed)
    names = ("赵敏", "Peter Hall", "钱多多", "李雷", "Anna Lee", "孙悦")
    rows = [
        ({"name": names[0], "phone": "12345", "company": "星河数据科技有限公司"}, "phone"),
        ({"name": names[1], "email": "foo@", "company": "Apex Cloud Ltd"}, "email"),
        ({"company": "无名贸易有限公司", "title": "采购经理", "city": "上海"}, "name"),
        ({"name": names[2], "phone": "138001380", "email": "qd@163.com"}, "phone"),
        ({"name": names[3], "email": "li lei@@qq.com"}, "email"),
        ({"name": names[4], "headcount": "a lot", "phone": "+44 7700 900123"}, "phone"),
        ({"industry": "制造业", "notes": "展会名片, 看不清"}, "name"),
        ({"name": names[5], "wechat_id": "微信同号", "headcount": "很多"}, "wechat_id"),
    ]
    rng.shuffle(rows)
    out = []
    for i, (record, fld) in enumerate(rows):
        out.append(GeneratedLead(-1, {"external_id": f"bad-{seed}-{i}", **record}, "invalid",
                                 0, reject_field=fld))
    return out


# ---------------------------------------------------------------------------------- files

#: Columns of generated lead files, in order.
FILE_COLUMNS: tuple[str, ...] = (
    "external_id", "name", "given_name", "family_name", "phone", "email", "wechat_id", "title",
    "company", "industry", "headcount", "region", "province", "city", "address", "postcode",
    "product_interest", "notes", "tags", "consent",
)
#: Header of each column in English and Chinese files, as people write them.
FILE_HEADERS: dict[str, dict[str, str]] = {
    "en": {
        "external_id": "ID", "name": "Name", "given_name": "First Name",
        "family_name": "Last Name", "phone": "Mobile", "email": "Email", "wechat_id": "WeChat",
        "title": "Job Title", "company": "Company", "industry": "Industry",
        "headcount": "Employees", "region": "Region", "province": "Province", "city": "City",
        "address": "Address", "postcode": "Zip", "product_interest": "Product Interest",
        "notes": "Notes", "tags": "Tags", "consent": "Consent",
    },
    "zh": {
        "external_id": "线索编号", "name": "姓名", "given_name": "名", "family_name": "姓",
        "phone": "手机", "email": "邮箱", "wechat_id": "微信号", "title": "职位",
        "company": "公司名称", "industry": "行业", "headcount": "人数", "region": "区域",
        "province": "省份", "city": "城市", "address": "地址", "postcode": "邮编",
        "product_interest": "意向产品", "notes": "备注", "tags": "标签",
        # No Chinese alias exists for consent yet (leads.files); the English one is detected.
        "consent": "Consent",
    },
}


def write_lead_file(
    path: Path,
    leads: Iterable[GeneratedLead],
    *,
    fmt: Literal["csv", "xlsx", "jsonl"] = "csv",
    headers: Literal["en", "zh"] = "en",
    id_column: bool = True,
) -> int:
    """Write leads as a file an ops person would import; returns the number of rows.

    Columns are :data:`FILE_COLUMNS` with English or Chinese headers; CSV and XLSX go
    through ``leads.files.write_rows`` (UTF-8 with BOM, streaming), JSONL writes one object
    per line with only the fields present. ``id_column=False`` leaves the source ids out.
    """
    labels = FILE_HEADERS[headers]
    columns = [c for c in FILE_COLUMNS if id_column or c != "external_id"]
    path = Path(path)
    if fmt == "jsonl":
        return _write_jsonl(path, leads, columns, labels)
    from leadflow.leads import files

    rows = ([lead.record.get(c, "") for c in columns] for lead in leads)
    return files.write_rows(path, [labels[c] for c in columns], rows, fmt=fmt)


def _write_jsonl(path: Path, leads: Iterable[GeneratedLead], columns: list[str],
                 labels: dict[str, str]) -> int:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for lead in leads:
                rec = lead.record
                obj = {labels[c]: rec[c] for c in columns if c in rec}
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


_FIRMOGRAPHIC_COLUMNS = ("company", "domain", "industry", "headcount", "region", "province",
                         "city")


def write_firmographics(path: Path, pool: CompanyPool) -> int:
    """Write the pool's firmographics as CSV (or XLSX by suffix) for ``load_firmographics``."""
    from leadflow.leads import files

    path = Path(path)
    fmt = "xlsx" if path.suffix.lower() == ".xlsx" else "csv"
    rows = (
        [c.name, c.domain, c.industry.zh, c.headcount, c.city.region_zh, c.city.province_zh,
         c.city.zh + "市"]
        for c in pool
    )
    return files.write_rows(path, list(_FIRMOGRAPHIC_COLUMNS), rows, fmt=fmt)

